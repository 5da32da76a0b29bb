"""The state behind the fake Google Calendar (tests/adapters/google/fakes/google.py): calendars, events with etags
and change sequence numbers, sync tokens, recurrence, and the documented error shapes.

Behaviour follows the Calendar API v3 reference and guides:
- event ids chosen by the client use base32hex (a-v, 0-9), 5 to 1024 characters; a taken id
  (even by a deleted event) is 409 "duplicate";
- events.delete keeps a tombstone with status "cancelled": events.get still returns it, a second
  delete is 410 "deleted", and incremental sync reports it with only id and status;
- an instance of a recurring event has the id "<master>_<YYYYMMDDTHHMMSSZ>" (all-day: "_<YYYYMMDD>");
  writing to it creates an exception with recurringEventId and originalStartTime, and deleting it
  creates a cancelled exception;
- a sync token that was invalidated (or is garbage) is 410 "fullSyncRequired".
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
import re
import secrets
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dateutil.rrule import rrulestr

__all__ = ["ApiError", "CalendarState", "StoredEvent", "is_valid_event_id", "parse_rfc3339", "rfc3339"]

EVENT_ID = re.compile(r"^[a-v0-9]{5,1024}$")
INSTANCE_ID = re.compile(r"^(?P<master>[a-z0-9]+)_(?P<stamp>\d{8}(T\d{6}Z)?)$")


class ApiError(Exception):
    """An error response in Google's JSON error format."""

    def __init__(
        self,
        status: int,
        reason: str,
        message: str,
        *,
        domain: str = "global",
        location_type: str | None = None,
        location: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message
        self.domain = domain
        self.location_type = location_type
        self.location = location
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        """The documented error body: {"error": {"errors": [...], "code": ..., "message": ...}}."""
        detail: dict[str, Any] = {"domain": self.domain, "reason": self.reason, "message": self.message}
        if self.location_type:
            detail["locationType"] = self.location_type
        if self.location:
            detail["location"] = self.location
        return {"error": {"errors": [detail], "code": self.status, "message": self.message}}


def bad_request(message: str, reason: str = "invalid", location: str | None = None) -> ApiError:
    return ApiError(400, reason, message, location_type="parameter" if location else None, location=location)


def is_valid_event_id(value: str) -> bool:
    """Google's rule for client-chosen event ids (base32hex, 5 to 1024 characters)."""
    return bool(EVENT_ID.match(value))


def rfc3339(value: datetime) -> str:
    """UTC timestamp with milliseconds, as Google writes `updated` and `created`."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def parse_rfc3339(value: str, name: str) -> datetime:
    """An RFC 3339 timestamp with an offset; 400 otherwise."""
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (ValueError, AttributeError):
        raise bad_request(f"Invalid value for: {name}", location=name) from None
    if parsed.tzinfo is None:
        raise bad_request(f"Invalid value for: {name} (an offset is required)", location=name)
    return parsed


def _zone(name: str | None, where: str) -> ZoneInfo | None:
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise bad_request(f"Invalid time zone definition for {where}.", reason="timeRangeEmpty") from None


def event_time(value: Any, where: str) -> tuple[datetime, bool]:
    """(aware start, all_day) of an EventDateTime; all-day dates are taken at UTC midnight."""
    if not isinstance(value, dict):
        raise ApiError(400, "required", f"Missing {where} time.")
    if value.get("date"):
        try:
            day = date.fromisoformat(value["date"])
        except (TypeError, ValueError):
            raise bad_request(f"Invalid {where} date.") from None
        return datetime(day.year, day.month, day.day, tzinfo=UTC), True
    if value.get("dateTime"):
        raw = str(value["dateTime"])
        try:
            parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            raise bad_request(f"Invalid {where} time.") from None
        zone = _zone(value.get("timeZone"), where)
        if parsed.tzinfo is None:
            if zone is None:
                raise bad_request(f"Missing time zone definition for {where} time.")
            parsed = parsed.replace(tzinfo=zone)
        elif zone is not None:
            parsed = parsed.astimezone(zone)
        return parsed, False
    raise ApiError(400, "required", f"Missing {where} time.")


def _stamp(original: datetime, all_day: bool) -> str:
    if all_day:
        return original.strftime("%Y%m%d")
    return original.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def _parse_exdates(lines: list[str], zone: ZoneInfo | None) -> set[datetime]:
    found: set[datetime] = set()
    for line in lines:
        if not line.upper().startswith("EXDATE"):
            continue
        head, _, values = line.partition(":")
        params = dict(p.split("=", 1) for p in head.split(";")[1:] if "=" in p)
        tz = ZoneInfo(params["TZID"]) if "TZID" in params else zone
        for raw in values.split(","):
            raw = raw.strip()
            if len(raw) == 8:
                found.add(datetime.strptime(raw, "%Y%m%d").replace(tzinfo=UTC))
            elif raw.endswith("Z"):
                found.add(datetime.strptime(raw, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC))
            else:
                found.add(datetime.strptime(raw, "%Y%m%dT%H%M%S").replace(tzinfo=tz or UTC))
    return {d.astimezone(UTC) for d in found}


@dataclass
class StoredEvent:
    resource: dict[str, Any]
    seq: int


@dataclass
class PageCursor:
    calendar_id: str
    ids: list[str]
    offset: int
    sync_seq: int
    minimal_deleted: bool


@dataclass
class CalendarState:
    """One calendar: its events keyed by id and a change sequence for sync tokens."""

    id: str
    summary: str
    time_zone: str = "UTC"
    access_role: str = "owner"
    primary: bool = False
    events: dict[str, StoredEvent] = field(default_factory=dict)
    seq: int = 0
    #: Sync tokens issued before this sequence number are answered with 410.
    oldest_valid_seq: int = 0
    #: Changes the token generation, so tokens of a recreated calendar are never accepted.
    generation: str = field(default_factory=lambda: secrets.token_hex(4))

    # --- sync tokens --------------------------------------------------------------------------
    def sync_token(self, seq: int) -> str:
        raw = json.dumps({"c": self.id, "g": self.generation, "s": seq}).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    def read_sync_token(self, token: str) -> int:
        gone = ApiError(410, "fullSyncRequired", "Sync token is no longer valid, a full sync is required.")
        try:
            data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
            seq = int(data["s"])
            ok = data["c"] == self.id and data["g"] == self.generation
        except (ValueError, KeyError, TypeError, binascii.Error):
            raise gone from None
        if not ok or seq < self.oldest_valid_seq or seq > self.seq:
            raise gone
        return seq

    def invalidate_sync_tokens(self) -> None:
        self.oldest_valid_seq = self.seq + 1

    # --- reading ---------------------------------------------------------------------------------
    def get(self, event_id: str) -> dict[str, Any]:
        stored = self.events.get(event_id)
        if stored is not None:
            return stored.resource
        virtual = self.virtual_instance(event_id)
        if virtual is None:
            raise ApiError(404, "notFound", "Not Found")
        return virtual

    def master_of(self, resource: dict[str, Any]) -> dict[str, Any] | None:
        rid = resource.get("recurringEventId")
        stored = self.events.get(rid) if rid else None
        return stored.resource if stored else None

    def virtual_instance(self, instance_id: str) -> dict[str, Any] | None:
        """An unmodified occurrence of a series, addressed by its instance id."""
        match = INSTANCE_ID.match(instance_id)
        if not match:
            return None
        stored = self.events.get(match["master"])
        if (
            stored is None
            or not stored.resource.get("recurrence")
            or stored.resource["status"] == "cancelled"
        ):
            return None
        master = stored.resource
        start, all_day = event_time(master["start"], "start")
        end, _ = event_time(master["end"], "end")
        stamp = match["stamp"]
        for original in self.occurrences(master, start, start + timedelta(days=366 * 30), limit=5000):
            if _stamp(original, all_day) == stamp:
                return self._instance_from(master, original, original + (end - start), all_day, instance_id)
            if _stamp(original, all_day) > stamp:
                break
        return None

    def _instance_from(
        self, master: dict[str, Any], start: datetime, end: datetime, all_day: bool, instance_id: str
    ) -> dict[str, Any]:
        instance = copy.deepcopy(master)
        instance.pop("recurrence", None)
        instance["id"] = instance_id
        instance["recurringEventId"] = master["id"]
        zone_name = master["start"].get("timeZone")
        if all_day:
            instance["start"] = {"date": start.date().isoformat()}
            instance["end"] = {"date": end.date().isoformat()}
            instance["originalStartTime"] = {"date": start.date().isoformat()}
        else:
            tz = ZoneInfo(zone_name) if zone_name else UTC
            s, e = start.astimezone(tz).isoformat(), end.astimezone(tz).isoformat()
            instance["start"] = {"dateTime": s, **({"timeZone": zone_name} if zone_name else {})}
            instance["end"] = {"dateTime": e, **({"timeZone": zone_name} if zone_name else {})}
            instance["originalStartTime"] = dict(instance["start"])
        return instance

    def occurrences(
        self, master: dict[str, Any], after: datetime, before: datetime, limit: int = 100_000
    ) -> list[datetime]:
        """Original starts of a series' occurrences in [after, before), EXDATEs removed (exceptions
        are not applied here)."""
        start, _ = event_time(master["start"], "start")
        lines = [str(x) for x in master.get("recurrence", [])]
        rules = [ln for ln in lines if ln.upper().startswith(("RRULE", "RDATE"))]
        if not rules:
            return []
        zone = ZoneInfo(master["start"]["timeZone"]) if master["start"].get("timeZone") else None
        try:
            rule = rrulestr("\n".join(rules), dtstart=start, forceset=True)
        except (ValueError, TypeError):
            raise bad_request("Invalid recurrence rule.") from None
        excluded = _parse_exdates(lines, zone)
        found: list[datetime] = []
        for occ in rule:
            if occ >= before or len(found) >= limit:
                break
            if occ < after or occ.astimezone(UTC) in excluded:
                continue
            found.append(occ)
        return found

    def exceptions_of(self, master_id: str) -> list[dict[str, Any]]:
        return [s.resource for s in self.events.values() if s.resource.get("recurringEventId") == master_id]

    def overlaps(self, resource: dict[str, Any], lo: datetime | None, hi: datetime | None) -> bool:
        """Whether an event (or any occurrence of a series) falls in (timeMin, timeMax)."""
        if lo is None and hi is None:
            return True
        if "start" not in resource:
            return True
        start, _ = event_time(resource["start"], "start")
        end, _ = event_time(resource["end"], "end")
        low = lo or datetime(1900, 1, 1, tzinfo=UTC)
        high = hi or datetime(9000, 1, 1, tzinfo=UTC)
        if resource.get("recurrence"):
            length = end - start
            return any(o + length > low for o in self.occurrences(resource, low - length, high, limit=2))
        if resource.get("originalStartTime"):
            original, _ = event_time(resource["originalStartTime"], "originalStartTime")
            if low <= original < high:
                return True
        return start < high and (end > low or (end == start and start >= low))

    # --- writing ---------------------------------------------------------------------------------
    def bump(self) -> int:
        self.seq += 1
        return self.seq

    def store(self, resource: dict[str, Any], now: datetime) -> dict[str, Any]:
        seq = self.bump()
        resource["etag"] = f'"{3_000_000_000_000_000 + seq * 1000}"'
        resource["updated"] = rfc3339(now)
        self.events[resource["id"]] = StoredEvent(resource=resource, seq=seq)
        return resource

    def materialize(self, event_id: str) -> dict[str, Any] | None:
        """The stored event, or the occurrence behind an instance id (not yet stored)."""
        stored = self.events.get(event_id)
        if stored is not None:
            return stored.resource
        return self.virtual_instance(event_id)


def instance_stamp(original: datetime, all_day: bool) -> str:
    """The suffix of an instance id for an occurrence starting at `original`."""
    return _stamp(original, all_day)
