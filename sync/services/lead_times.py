"""Preferred times as people write them on a form: "Tuesday afternoons", "after 5pm", "weekday mornings".

Each phrase (split at commas, semicolons, "or" and "and") becomes one window: some weekdays (or
any), between two times of day. A slot fits the preference when it fits any window. The words are
the chat's own (sync.services.when: weekdays, 3pm, 15:30, noon; the day parts of `slots`). A
phrase with any word not understood is kept whole as text for staff to read; it narrows nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time
from typing import Any

from sync.services.when import ParseError, TimeRef, time_token, weekday_number

__all__ = ["DAY_PARTS", "TimePreference", "TimeWindow", "parse_preferences"]

END_OF_DAY = time(23, 59)
#: Parts of the day in a form's words (as `slots` reads them).
DAY_PARTS: dict[str, tuple[time, time]] = {
    "morning": (time(0), time(12)),
    "afternoon": (time(12), time(17)),
    "evening": (time(17), END_OF_DAY),
    "lunchtime": (time(11, 30), time(14)),
}
_GROUPS = {"weekday": (0, 1, 2, 3, 4), "weekend": (5, 6), "day": (0, 1, 2, 3, 4, 5, 6)}
#: Words that add nothing ("any Tuesday afternoon please").
_FILLER = {"any", "on", "in", "the", "a", "an", "please", "pref", "preferably", "ideally", "at", "time", "times",
           "every", "most", "early", "late", "ok", "fine", "good", "best", "is", "are", "works", "work", "for", "me",
           "anytime", "any-time", "all"}
_SPLIT = re.compile(r"\s*(?:[,;/\n]|\bor\b|\band\b|&)\s*", re.IGNORECASE)
_BETWEEN = re.compile(r"\bbetween\s+(\S+)\s+(?:and|&)\s+(\S+)", re.IGNORECASE)
_SHORT_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """Some weekdays (empty: any day) between two local times of day."""

    weekdays: tuple[int, ...] = ()
    start: time = time(0)
    end: time = END_OF_DAY

    def fits(self, start: datetime, end: datetime) -> bool:
        """True when a visit from `start` to `end` (local times) lies inside this window."""
        if self.weekdays and start.weekday() not in self.weekdays:
            return False
        if end.date() != start.date() and end.time() != time(0):
            return False
        finish = END_OF_DAY if end.time() == time(0) and end.date() != start.date() else end.time()
        return self.start <= start.time() and finish <= self.end

    def label(self) -> str:
        days = "weekdays" if self.weekdays == _GROUPS["weekday"] else \
            "weekends" if self.weekdays == _GROUPS["weekend"] else "/".join(_SHORT_DAYS[d] for d in self.weekdays)
        part = next((name for name, (a, b) in DAY_PARTS.items()
                     if (a, b) == (self.start, self.end) and name != "evening"), None)
        if part is not None:
            hours = part
        elif self.start == time(0) and self.end == END_OF_DAY:
            hours = ""
        elif self.end == END_OF_DAY:
            hours = f"after {self.start:%H:%M}"
        elif self.start == time(0):
            hours = f"before {self.end:%H:%M}"
        else:
            hours = f"{self.start:%H:%M}-{self.end:%H:%M}"
        return " ".join(w for w in (days, hours) if w) or "any time"


@dataclass(frozen=True, slots=True)
class TimePreference:
    """What the person said about when: windows understood (any one fits) and text that was not."""

    windows: tuple[TimeWindow, ...] = ()
    unread: tuple[str, ...] = ()

    def fits(self, start: datetime, end: datetime) -> bool:
        """True when the visit fits a window (or no window narrows it)."""
        return not self.windows or any(w.fits(start, end) for w in self.windows)

    def label(self) -> str:
        """Short words for a card: "Tue afternoon, after 17:00" (text not understood quoted after)."""
        said = [w.label() for w in self.windows] + [f"“{t}”" for t in self.unread]
        return ", ".join(said) or "no preference"

    def to_json(self) -> dict[str, Any]:
        return {"windows": [[list(w.weekdays), f"{w.start:%H:%M}", f"{w.end:%H:%M}"] for w in self.windows],
                "unread": list(self.unread)}

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> TimePreference:
        if not data:
            return cls()
        windows = tuple(TimeWindow(tuple(int(d) for d in days), time.fromisoformat(a), time.fromisoformat(b))
                        for days, a, b in data.get("windows", ()))
        return cls(windows, tuple(str(t) for t in data.get("unread", ())))

    def merged(self, other: TimePreference) -> TimePreference:
        """Both preferences (a second form from the same person adds what they said)."""
        return TimePreference(tuple(dict.fromkeys(self.windows + other.windows)),
                              tuple(dict.fromkeys(self.unread + other.unread)))


def _clock(tok: str) -> time | None:
    try:
        ref: TimeRef | None = time_token(tok)
    except ParseError:
        return None
    if ref is None and re.fullmatch(r"\d{1,2}", tok):
        # "after 5" on a clinic's form means the afternoon/evening hour: 1-7 read as pm, 8-12 as am.
        hour = int(tok)
        if 1 <= hour <= 7:
            return time(hour + 12)
        if 8 <= hour <= 12:
            return time(hour)
        return None
    return ref.as_time() if ref is not None else None


def _tokens(phrase: str) -> list[str]:
    toks = phrase.lower().replace("–", "-").split()
    merged: list[str] = []
    for tok in toks:
        if tok in ("am", "pm", "a.m.", "p.m.") and merged and re.fullmatch(r"\d{1,2}([:.]\d{2})?", merged[-1]):
            merged[-1] += tok
        elif re.fullmatch(r"[^-]+-[^-]+", tok) and all(_clock(p) for p in tok.split("-")):
            first, second = tok.split("-")
            merged += [first, "-", second]
        else:
            merged.append(tok.strip(".!?()"))
    return [t for t in merged if t]


def _phrase(phrase: str) -> TimeWindow | None:
    """One phrase as a window, or None when any word in it is not understood."""
    days: set[int] = set()
    start, end = time(0), END_OF_DAY
    toks = _tokens(phrase)
    i = 0
    said = False
    while i < len(toks):
        tok = toks[i]
        day = weekday_number(tok)
        group = _GROUPS.get(tok.rstrip("s")) if tok.rstrip("s") != "day" or tok in ("days",) else None
        part = DAY_PARTS.get(tok.rstrip("s")) or (DAY_PARTS["lunchtime"] if tok in ("lunch", "lunchtimes") else None)
        if day is not None:
            days.add(day)
        elif group is not None and tok.rstrip("s") != "day":
            days.update(group)
        elif part is not None:
            start, end = max(start, part[0]), min(end, part[1])
        elif tok in ("after", "from", "since") and i + 1 < len(toks) and _clock(toks[i + 1]):
            start = max(start, _clock(toks[i + 1]) or start)
            i += 1
        elif tok in ("before", "until", "till", "by", "to", "-") and i + 1 < len(toks) and _clock(toks[i + 1]):
            end = min(end, _clock(toks[i + 1]) or end)
            i += 1
        elif tok == "between" and i + 3 < len(toks) and toks[i + 2] in ("and", "-", "to") \
                and _clock(toks[i + 1]) and _clock(toks[i + 3]):
            start, end = max(start, _clock(toks[i + 1]) or start), min(end, _clock(toks[i + 3]) or end)
            i += 3
        elif _clock(tok) is not None and tok not in ("noon", "midnight") and not re.fullmatch(r"\d{1,2}", tok):
            # A bare time ("3pm"): an hour's window from then.
            at = _clock(tok) or start
            start, end = at, min(END_OF_DAY, time(min(at.hour + 1, 23), at.minute if at.hour < 23 else 59))
        elif tok in _FILLER or tok == "days":
            i += 1
            continue
        else:
            return None
        said = True
        i += 1
    if not said or start >= end:
        return None
    return TimeWindow(tuple(sorted(days)), start, end)


def parse_preferences(texts: tuple[str, ...] | list[str]) -> TimePreference:
    """Read each written preference; phrases understood become windows, the rest is kept as text."""
    windows: list[TimeWindow] = []
    unread: list[str] = []
    for text in texts:
        text = " ".join(str(text).split())[:300]
        if not text:
            continue
        # "Tuesday or Thursday afternoons": days joined by "or" share the part of day after them, so
        # a phrase of days alone borrows the hours of the phrase that follows it.
        text = _BETWEEN.sub(r"from \1 to \2", text)
        phrases = [p for p in _SPLIT.split(text) if p.strip()]
        read = [_phrase(p) for p in phrases]
        for n, window in enumerate(read):
            if window is None:
                if all(t in _FILLER for t in _tokens(phrases[n])):
                    continue  # "any time": nothing to narrow, nothing to keep
                unread.append(phrases[n].strip())
                continue
            if window.start == time(0) and window.end == END_OF_DAY and window.weekdays:
                later = next((w for w in read[n + 1:] if w is not None), None)
                if later is not None and (later.start, later.end) != (time(0), END_OF_DAY):
                    window = TimeWindow(window.weekdays, later.start, later.end)
            windows.append(window)
    return TimePreference(tuple(dict.fromkeys(windows)), tuple(dict.fromkeys(unread)))
