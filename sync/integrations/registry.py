"""The integrations this build has, found through the `clinicbot.integrations` entry points.

Each entry point names one Integration descriptor (`adapters.graph:INTEGRATION`). Descriptors are
imported lazily, one at a time, so a missing optional dependency of one integration never breaks
another: it is reported (`broken()`, `clinicbot doctor`) and its name answers with Refused.
Tests and embedders replace or add a descriptor through `OVERRIDES` (name -> Integration).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from importlib.metadata import entry_points

from sync.contract import CalendarProvider, ConnectionInfo, Refused
from sync.contract.integration import CalendarSlot, HostSettings, Integration

__all__ = [
    "GROUP",
    "OVERRIDES",
    "broken",
    "calendar_slot",
    "check_settings",
    "consent_client_id",
    "get",
    "integrations",
    "names",
    "needs_tenant_consent",
    "open_calendar",
    "resolve",
    "supported",
]

GROUP = "clinicbot.integrations"
log = logging.getLogger("clinicbot.integrations")

#: name -> descriptor used instead of (or besides) the entry point of that name.
OVERRIDES: dict[str, Integration] = {}
_loaded: dict[str, Integration] = {}
_failed: dict[str, str] = {}


#: The entry points as last listed, with the lister that listed them (a test may swap `entry_points`).
_listed: tuple[object, dict[str, str]] | None = None


def _entry_points() -> dict[str, str]:
    """name -> "module:attribute" of every registered integration (nothing is imported).

    Listed once per process: each listing reads every installed distribution's metadata (~5 ms),
    and `integrations()` is asked per appointment event (is mail configured?), so a 200-booking sync
    spent a second of event-loop time here, stalling webhook acks (issue 14's p99).
    """
    global _listed
    if _listed is None or _listed[0] is not entry_points:
        _listed = (entry_points, {ep.name: ep.value for ep in entry_points(group=GROUP)})
    return _listed[1]


def names() -> list[str]:
    """Every integration name this build registers, sorted; none is imported."""
    return sorted(set(_entry_points()) | set(OVERRIDES))


def get(name: str) -> Integration:
    """The descriptor named `name`, imported on first use; Refused for an unknown or broken one."""
    if name in OVERRIDES:
        return OVERRIDES[name]
    found = _loaded.get(name)
    if found is not None:
        return found
    value = _entry_points().get(name)
    for ep in entry_points(group=GROUP, name=name) if value is not None else ():
        try:
            loaded = ep.load()
        except ImportError as exc:
            _failed[name] = f"{type(exc).__name__}: {exc}"
            log.warning("integration not loadable", extra={"integration": name, "error": _failed[name]})
            raise Refused(f"the {name} integration is not installed in this build ({exc})") from None
        if not isinstance(loaded, Integration) or loaded.name != name:
            raise Refused(f"the entry point {name} = {ep.value} is not the Integration named {name!r}")
        _loaded[name] = loaded
        _failed.pop(name, None)
        return loaded
    raise Refused(f"clinicbot does not know {name!r}; it supports: {supported()}")


def supported() -> str:
    """What a person may name, for an answer to a name nobody registered: every integration's words."""
    return "; ".join(f"{i.title} ({', '.join(i.words)})" for i in integrations())


def integrations(only: Iterable[str] | None = None) -> list[Integration]:
    """Every integration that loads (or those named in `only`, importing no other), by name; broken ones
    are left out (see `broken`)."""
    out = []
    for name in names() if only is None else sorted(set(only)):
        try:
            out.append(get(name))
        except Refused:
            continue
    return out


def broken(only: Iterable[str] | None = None) -> dict[str, str]:
    """name -> why it did not load, for the integrations `integrations(only)` left out."""
    wanted = None if only is None else set(only)
    integrations(wanted)
    return {name: why for name, why in _failed.items() if wanted is None or name in wanted}


def resolve(word: str) -> Integration | None:
    """The integration a person means by `word` (its name or one of its chat aliases), or None."""
    word = word.strip().lower()
    for integration in integrations():
        if word in integration.words:
            return integration
    return None


def calendar_slot(name: str) -> CalendarSlot:
    """The calendar capability of an integration; Refused when it has none."""
    slot = get(name).calendars
    if slot is None:
        raise Refused(f"the {name} integration has no calendars")
    return slot


def open_calendar(conn: ConnectionInfo, calendar_remote_id: str, host: HostSettings) -> CalendarProvider:
    """A provider for one calendar of a connection, through its integration's calendar capability."""
    return calendar_slot(conn.provider).open_calendar(conn, calendar_remote_id, host)


def consent_client_id(host: HostSettings) -> str | None:
    """The client id an admin's tenant consent grants: that of the first integration connecting by tenant consent."""
    for integration in integrations():
        client_id = integration.connect.client_id
        if "tenant_consent" in integration.connect.kinds and client_id is not None:
            return client_id(host)
    return None


def needs_tenant_consent(name: str) -> bool:
    """True when the integration connects practice-wide after an admin's tenant consent (Teams asks first)."""
    try:
        return "tenant_consent" in get(name).connect.kinds
    except Refused:
        return False


def check_settings(host: HostSettings, only: Iterable[str] | None = None) -> None:
    """Read every loadable integration's settings section (or those named in `only`); ConfigError naming the
    variable when one is wrong."""
    for integration in integrations(only):
        if integration.settings is not None:
            host.section(integration.settings)
