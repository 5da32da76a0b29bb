"""A published schedule pushed as signed JSON to `/webhooks/shifts/<connection>`, for a scheduler or a script.

The request carries `X-Clinicbot-Signature: t=<unix seconds>,v1=<hex>`, the HMAC-SHA256 of
`t + "." + raw body` under the connection's push secret (`clinicbot shifts push-secret`). The
signature is checked on the raw body before anything decodes it, in constant time, and a `t` more
than five minutes from the server's clock is refused, so a captured push cannot be replayed later;
within the window the core's replay memory refuses it (`X-Clinicbot-Delivery`, else the signed message: a
sender retrying after a failure signs again with a fresh timestamp, which is a new delivery).

The body is a snapshot of a window (shifts missing from it inside the window were removed):

    {"window": {"start": "2026-12-07", "end": "2026-12-14"},     (optional: the shifts' days)
     "origin": "QGenda nightly",                                  (optional)
     "shifts": [{"id": "A-1", "person": {"name": "Ann Lee", "unique_id": "LB1",
                 "custom1": "ann@clinic.example"}, "assignment": "Night call",
                 "start": "2026-12-07T19:00", "end": "2026-12-08T07:00",
                 "notes": "Ward B", "published": true}]}

Times are ISO 8601; without an offset they are in the practice's zone. A bad shift fails the whole
push naming its index: nothing is imported from a push that did not read whole.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from adapters.kit import signed_body
from adapters.kit.signed_body import SIGNATURE_HEADER, TOLERANCE
from adapters.shifts.csvfile import MAX_CELL, MAX_ROWS, looks_like_formula, parse_time
from sync.contract import BadPayload
from sync.contract.shifts import IDENTITY_FIELDS, Shift, ShiftPerson, ShiftSnapshot

__all__ = ["DELIVERY_HEADER", "MAX_PUSH_BYTES", "SIGNATURE_HEADER", "TOLERANCE", "parse_push", "sign", "verify_push"]

PROVIDER = "shifts"
DELIVERY_HEADER = "x-clinicbot-delivery"
MAX_PUSH_BYTES = 10 * 1024 * 1024


def sign(body: bytes, secret: str, at: datetime) -> str:
    """The signature header's value for `body` sent at `at` (for senders, and tests)."""
    return signed_body.sign(body, secret, int(at.timestamp()))


def verify_push(body: bytes, headers: Mapping[str, str], secret: str, now: datetime) -> str | None:
    """None when the headers sign `body` under `secret` within the window; else why not (for the log)."""
    return signed_body.check(body, headers.get(SIGNATURE_HEADER, ""), secret, now.timestamp())


def _bad(message: str, index: int | None = None) -> BadPayload:
    where = f"shift {index}: " if index is not None else ""
    return BadPayload(f"schedule push: {where}{message}", line=index, provider=PROVIDER)


def _str(value: Any, what: str, index: int | None, *, required: bool = False) -> str:
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise _bad(f"{what} must be a string", index)
    text: str = value.strip()
    if required and not text:
        raise _bad(f"{what} is empty", index)
    if len(text) > MAX_CELL:
        raise _bad(f"{what} is longer than {MAX_CELL} characters", index)
    if text and looks_like_formula(text):
        raise _bad(f"{what} holds a spreadsheet formula ({text[:20]!r})", index)
    return text


def _time(value: Any, zone: ZoneInfo, what: str, index: int | None) -> tuple[datetime, bool]:
    text = _str(value, what, index, required=True)
    try:
        return parse_time(text, zone, index or 0, what)
    except BadPayload as exc:
        raise _bad(str(exc).split(": ", 2)[-1], index) from None


def parse_push(body: bytes, zone_name: str) -> ShiftSnapshot:
    """Read a verified push body; BadPayload naming the first bad shift (its index in `shifts`)."""
    zone = ZoneInfo(zone_name)
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise _bad("the body is not JSON") from None
    if not isinstance(data, dict) or not isinstance(data.get("shifts"), list):
        raise _bad('the body must be an object with a "shifts" list')
    items: list[Any] = data["shifts"]
    if len(items) > MAX_ROWS:
        raise _bad(f"more than {MAX_ROWS} shifts in one push")
    shifts: list[Shift] = []
    seen: set[str] = set()
    for index, item in enumerate(items):
        shift = _shift(item, zone, index)
        if shift.key in seen:
            raise _bad(f"id {shift.key!r} is on two shifts", index)
        seen.add(shift.key)
        shifts.append(shift)
    window = data.get("window")
    if window is not None:
        if not isinstance(window, dict):
            raise _bad('"window" must be an object with "start" and "end"')
        start, _ = _time(window.get("start"), zone, "window start", None)
        end, end_has_time = _time(window.get("end"), zone, "window end", None)
        if not end_has_time:
            end += timedelta(days=1)  # a date-only end is the end of that day
        if end <= start:
            raise _bad("the window ends before it starts")
        outside = next((i for i, s in enumerate(shifts) if s.start < start or s.start >= end), None)
        if outside is not None:
            raise _bad("starts outside the window", outside)
    elif shifts:
        first = min(s.start for s in shifts).astimezone(zone)
        last = max(s.end for s in shifts).astimezone(zone)
        start = datetime.combine(first.date(), time(0), tzinfo=zone)
        end = datetime.combine(last.date() + timedelta(days=1), time(0), tzinfo=zone)
    else:
        raise _bad('an empty push needs its "window" (which days are now without shifts)')
    origin = _str(data.get("origin"), "origin", None)[:200] or "signed push"
    return ShiftSnapshot(shifts=tuple(shifts), start=start, end=end, origin=origin)


def _shift(item: Any, zone: ZoneInfo, index: int) -> Shift:
    if not isinstance(item, dict):
        raise _bad("must be an object", index)
    person = item.get("person")
    if not isinstance(person, dict):
        raise _bad('"person" must be an object with a "name"', index)
    ids = {f: _str(person.get(f), f"person {f}", index) for f in IDENTITY_FIELDS}
    key = _str(item.get("id"), "id", index, required=True)
    if len(key) > 200:
        raise _bad("the id is longer than 200 characters", index)
    start, _ = _time(item.get("start"), zone, "start", index)
    end, _ = _time(item.get("end"), zone, "end", index)
    if end <= start:
        raise _bad(f"it ends ({end:%Y-%m-%d %H:%M}) before it starts ({start:%Y-%m-%d %H:%M})", index)
    if end - start > timedelta(days=7):
        raise _bad("it is longer than 7 days", index)
    published = item.get("published", True)
    if not isinstance(published, bool):
        raise _bad('"published" must be true or false', index)
    return Shift(
        key=key,
        person=ShiftPerson(name=_str(person.get("name"), "person name", index, required=True), **ids),
        assignment=_str(item.get("assignment"), "assignment", index, required=True),
        start=start, end=end, notes=_str(item.get("notes"), "notes", index), published=published,
    )
