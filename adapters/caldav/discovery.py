"""CalDAV account discovery (RFC 6764, RFC 4791 section 6).

/.well-known/caldav (following its redirect) or the URL given -> DAV:current-user-principal ->
C:calendar-home-set -> the calendar collections in the home, with display name, ctag, sync
support (supported-report-set), calendar-timezone and whether we may write.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

import httpx

from adapters.caldav.session import DavSession, ReportUnsupported
from adapters.caldav.xml import CS, ICAL, C, D, Response, propfind
from adapters.kit.ical import parse_components
from adapters.kit.ical.zones import iana_zone
from sync.contract import BadPayload, CalendarInfo, NotFound, ProviderError

__all__ = ["discover_calendars"]

log = logging.getLogger("clinicbot.caldav")

_PRINCIPAL_PROPS = [(D, "current-user-principal"), (D, "resourcetype"), (C, "calendar-home-set")]
_CALENDAR_PROPS = [
    (D, "resourcetype"),
    (D, "displayname"),
    (CS, "getctag"),
    (D, "sync-token"),
    (D, "supported-report-set"),
    (C, "calendar-timezone"),
    (C, "supported-calendar-component-set"),
    (D, "current-user-privilege-set"),
    (ICAL, "calendar-color"),
]


def _is_calendar(response: Response) -> bool:
    kind = response.element(D, "resourcetype")
    return kind is not None and kind.find(f"{{{C}}}calendar") is not None


def _has_vevents(response: Response) -> bool:
    comps = response.element(C, "supported-calendar-component-set")
    if comps is None:
        return True
    names = {(c.get("name") or "").upper() for c in comps}
    return not names or "VEVENT" in names


def _supports_sync(response: Response) -> bool:
    reports = response.element(D, "supported-report-set")
    return reports is not None and reports.find(f".//{{{D}}}sync-collection") is not None


def _writable(response: Response) -> bool:
    privileges = response.element(D, "current-user-privilege-set")
    if privileges is None:
        return True
    names = {child.tag for p in privileges for child in p}
    return bool(names & {f"{{{D}}}write", f"{{{D}}}write-content", f"{{{D}}}all", f"{{{D}}}bind"})


def _timezone(response: Response) -> str | None:
    text = response.text(C, "calendar-timezone")
    if not text:
        return None
    try:
        for calendar in parse_components(text):
            for block in calendar.walk("VTIMEZONE"):
                for name in ("X-LIC-LOCATION", "TZID"):
                    prop = block.first(name)
                    zone = iana_zone(prop.value) if prop else None
                    if zone is not None:
                        return zone.key
    except BadPayload:
        log.info("caldav: unreadable calendar-timezone ignored")
    return None


async def _principal(session: DavSession, start_url: str) -> tuple[str, Response | None]:
    """The principal URL (and, when the start URL already is a calendar, that response)."""
    candidates = [start_url]
    if urlsplit(start_url).path in ("", "/"):
        candidates.insert(0, str(httpx.URL(start_url).join("/.well-known/caldav")))
    last_error: ProviderError | None = None
    for url in candidates:
        try:
            responses, _ = await session.multistatus(
                "PROPFIND",
                url,
                propfind(_PRINCIPAL_PROPS),
                depth="0",
                follow=True,
                unsupported=(403, 405, 501),
            )
        except (NotFound, ReportUnsupported, BadPayload) as exc:
            last_error = exc
            continue
        for response in responses:
            if _is_calendar(response):
                return url, response
            hrefs = response.hrefs(D, "current-user-principal")
            if hrefs:
                return str(httpx.URL(url).join(hrefs[0])), None
            if response.hrefs(C, "calendar-home-set"):
                return url, None
    raise BadPayload(
        f"{session.provider}: no CalDAV principal found at {start_url}" + (f" ({last_error})" if last_error else "")
    )


async def discover_calendars(session: DavSession, start_url: str) -> list[CalendarInfo]:
    """Every event calendar the account can see."""
    principal, calendar = await _principal(session, start_url)
    if calendar is not None:
        responses, _ = await session.multistatus("PROPFIND", principal, propfind(_CALENDAR_PROPS), depth="0")
        return [_info(principal, r) for r in responses if _is_calendar(r)]
    responses, _ = await session.multistatus("PROPFIND", principal, propfind(_PRINCIPAL_PROPS), depth="0")
    homes = [h for r in responses for h in r.hrefs(C, "calendar-home-set")]
    if not homes:
        raise BadPayload(f"{session.provider}: the principal names no calendar-home-set")
    found: list[CalendarInfo] = []
    for home in dict.fromkeys(homes):
        home_url = str(httpx.URL(principal).join(home))
        responses, _ = await session.multistatus("PROPFIND", home_url, propfind(_CALENDAR_PROPS), depth="1")
        found.extend(_info(home_url, r) for r in responses if _is_calendar(r) and _has_vevents(r))
    return found


def _info(base: str, response: Response) -> CalendarInfo:
    url = str(httpx.URL(base).join(response.href))
    if not url.endswith("/"):
        url += "/"
    name = response.text(D, "displayname") or url.rstrip("/").rsplit("/", 1)[-1]
    return CalendarInfo(
        remote_id=url,
        name=name,
        timezone=_timezone(response),
        read_only=not _writable(response),
        extra={
            "ctag": response.text(CS, "getctag"),
            "sync_token": response.text(D, "sync-token"),
            "supports_sync": _supports_sync(response),
            "color": response.text(ICAL, "calendar-color"),
        },
    )
