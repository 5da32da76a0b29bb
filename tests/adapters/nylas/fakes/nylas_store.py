"""The fake Nylas's state: grants, calendars, webhooks, injected failures, and Nylas's error shape.

Also the `when` rules the fake applies (as Nylas documents them: the shape is inferred from its keys
on writes and named by `object` on reads; a datespan's `end_date` is its last day) and the
signature of a delivery.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

__all__ = ["Delivery", "Failure", "FakeCalendar", "Grant", "NylasError", "Recorded", "Webhook", "normalise_when",
           "sign", "timespan", "when_span"]



class NylasError(Exception):
    """An API error in Nylas's shape."""

    def __init__(self, status: int, kind: str, message: str, *, provider_error: dict[str, Any] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.kind, self.message = status, kind, message
        self.provider_error, self.headers = provider_error, headers or {}

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"type": self.kind, "message": self.message}
        if self.provider_error is not None:
            error["provider_error"] = self.provider_error
        return {"request_id": str(uuid.uuid4()), "error": error}


@dataclass
class FakeCalendar:
    id: str
    name: str
    timezone: str = "Europe/London"
    read_only: bool = False
    primary: bool = False
    events: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class Grant:
    id: str
    email: str
    provider: str = "google"
    status: str = "valid"
    calendars: dict[str, FakeCalendar] = field(default_factory=dict)


@dataclass
class Webhook:
    id: str
    url: str
    triggers: list[str]
    secret: str
    status: str = "active"
    description: str = ""


@dataclass
class Failure:
    """The next `count` grant API calls (whose path holds `path`, when given) fail this way."""

    status: int
    kind: str
    message: str
    count: int = 1
    retry_after: str | None = None
    path: str | None = None
    #: The provider's own error, as Nylas passes it on (Microsoft's AADSTS codes, Google's words).
    provider_error: dict[str, Any] | None = None


@dataclass
class Delivery:
    webhook_id: str
    trigger: str
    delivery_id: str
    status: int | None
    body: bytes = b""


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]


def when_span(when: dict[str, Any]) -> tuple[float, float]:
    """The unix-seconds span of a stored `when`."""
    kind = when["object"]
    if kind == "timespan":
        return float(when["start_time"]), float(when["end_time"])
    if kind == "time":
        return float(when["time"]), float(when["time"])
    if kind == "date":
        day = date.fromisoformat(when["date"])
        return _utc_day(day), _utc_day(day) + 86400
    first, last = date.fromisoformat(when["start_date"]), date.fromisoformat(when["end_date"])
    return _utc_day(first), _utc_day(last) + 86400


def _utc_day(day: date) -> float:
    return float((day - date(1970, 1, 1)).days * 86400)


def normalise_when(raw: Any) -> dict[str, Any]:
    """A request's `when` with its `object` (inferred from its keys as Nylas does); 400 when unreadable."""
    if not isinstance(raw, dict):
        raise NylasError(400, "invalid_request_error", "when is required")
    when = dict(raw)
    kind = when.get("object") or ("timespan" if "start_time" in when else "time" if "time" in when
                                  else "datespan" if "start_date" in when else "date" if "date" in when else None)
    try:
        if kind == "timespan":
            start, end = int(when["start_time"]), int(when["end_time"])
            if end < start:
                raise NylasError(400, "invalid_request_error", "end_time must be after start_time")
            return {"object": "timespan", "start_time": start, "end_time": end,
                    "start_timezone": when.get("start_timezone") or "UTC",
                    "end_timezone": when.get("end_timezone") or when.get("start_timezone") or "UTC"}
        if kind == "time":
            return {"object": "time", "time": int(when["time"]), "timezone": when.get("timezone") or "UTC"}
        if kind == "date":
            return {"object": "date", "date": date.fromisoformat(when["date"]).isoformat()}
        if kind == "datespan":
            first, last = date.fromisoformat(when["start_date"]), date.fromisoformat(when["end_date"])
            if last < first:
                raise NylasError(400, "invalid_request_error", "end_date must not be before start_date")
            return {"object": "datespan", "start_date": first.isoformat(), "end_date": last.isoformat()}
    except (KeyError, TypeError, ValueError):
        pass
    raise NylasError(400, "invalid_request_error", "when is not a valid time, timespan, date or datespan")


def sign(body: bytes, secret: str) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()



def timespan(start: datetime, minutes: int = 60, zone: str = "Europe/London") -> dict[str, Any]:
    """A `when` for tests: a timespan starting at the aware `start`."""
    return {"start_time": int(start.timestamp()), "end_time": int((start + timedelta(minutes=minutes)).timestamp()),
            "start_timezone": zone, "end_timezone": zone}

