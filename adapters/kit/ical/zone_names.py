"""The IANA zone a TZID names: directly, as a Windows id, or inside a vendor prefix such as
"/mozilla.org/20050126_1/Europe/Berlin". Used by the reader, the zone resolver and feed discovery."""

from __future__ import annotations

from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from adapters.kit.ical.windows_zones import windows_to_iana

__all__ = ["iana_zone"]


@lru_cache(maxsize=1024)
def iana_zone(name: str) -> ZoneInfo | None:
    """The IANA zone a TZID names, directly, as a Windows id or inside a vendor prefix; else None."""
    name = name.strip().strip('"')
    candidates = [name]
    windows = windows_to_iana(name)
    if windows:
        candidates.insert(0, windows)
    if "/" in name:
        parts = [p for p in name.split("/") if p]
        candidates.extend("/".join(parts[-n:]) for n in (3, 2) if len(parts) >= n)
    for candidate in candidates:
        if not candidate or candidate.startswith((".", "/")) or ".." in candidate:
            continue
        try:
            return ZoneInfo(candidate)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            continue
    return None
