"""Matching a platform's location to a practice's location: exact names and other names first, then
whole words, the longest winning; a tie is no match."""

from __future__ import annotations

import pytest

from sync.engine.places import Places

PLACES = Places([
    (1, "Northside", ["Northside Clinic", "L7Q2SQUARE"]),
    (2, "Southside", []),
    (3, "North", []),
    (4, "Annex", []),
    (5, "Annex", []),  # two practices' worth of the same word: ambiguous
])


@pytest.mark.parametrize(("text", "expected"), [
    ("Northside", 1),
    ("  northside   CLINIC ", 1),
    ("L7Q2SQUARE", 1),  # a Square location id given as another name
    ("Northside Clinic, 12 High St", 1),  # whole words, longest name wins over "North"
    ("North wing", 3),
    ("Northsidery", None),  # not a whole word
    ("Southside Rooms", 2),
    ("The Annex", None),
    ("", None),
    (None, None),
])
def test_match(text: str | None, expected: int | None) -> None:
    assert PLACES.match(text) == expected


def test_no_locations_match_nothing() -> None:
    assert not Places([]) and Places([]).match("Northside") is None
