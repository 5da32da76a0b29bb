"""A connection's stored failure reason is cut at a word boundary, never mid-word."""

from __future__ import annotations

from sync.engine.run import clip_words


def test_a_long_reason_is_cut_between_words() -> None:
    reason = "clinicbot will not fetch feeds.example: it resolves to a private address " * 10
    clipped = clip_words(reason, 100)
    assert len(clipped) <= 100 and clipped.endswith("…")
    assert reason.startswith(clipped[:-1]) and reason[len(clipped) - 1] == " "


def test_a_short_reason_is_kept_whole() -> None:
    assert clip_words("Refused: no", 100) == "Refused: no"
