"""Which of a practice's locations an appointment is at, from the location its platform gives.

A Square booking names its location by id, an Acuity appointment by its calendar's location, a
calendar event by its LOCATION text ("Northside Clinic, 12 High St"). A location matches when that
text is its name or one of its other names (`Location.refs`), ignoring case and spacing; otherwise
when its name (or an other name) appears in the text as whole words, the longest such name winning.
Two different locations matching equally well is no match: the appointment is left unplaced rather
than placed wrongly.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from sync.store.model import Location

__all__ = ["Places", "load_places"]


def _key(text: str) -> str:
    return " ".join(text.split()).casefold()


class Places:
    """A practice's locations, ready to match location texts."""

    def __init__(self, locations: Iterable[tuple[int, str, Iterable[str]]]) -> None:
        self._exact: dict[str, set[int]] = {}
        self._words: list[tuple[re.Pattern[str], int, int]] = []
        for loc_id, name, refs in locations:
            for word in (name, *refs):
                key = _key(str(word))
                if not key:
                    continue
                self._exact.setdefault(key, set()).add(loc_id)
                self._words.append((re.compile(rf"(?<!\w){re.escape(key)}(?!\w)"), len(key), loc_id))

    def __bool__(self) -> bool:
        return bool(self._exact)

    def match(self, text: str | None) -> int | None:
        """The location `text` names, or None."""
        if not text or not self._exact:
            return None
        key = _key(text)
        exact = self._exact.get(key)
        if exact:
            return next(iter(exact)) if len(exact) == 1 else None
        best, found = 0, set[int]()
        for pattern, size, loc_id in self._words:
            if size >= best and pattern.search(key):
                if size > best:
                    best, found = size, set()
                found.add(loc_id)
        return next(iter(found)) if len(found) == 1 else None


async def load_places(session: AsyncSession, practice_id: int) -> Places:
    rows = (await session.execute(
        select(Location.id, Location.name, Location.refs).where(Location.practice_id == practice_id))).all()
    return Places((i, n, r or ()) for i, n, r in rows)
