"""The fake Graph's read views: calendarView (paged by $skip), calendarView/delta (nextLink
$skiptoken pages ending in a $deltatoken deltaLink, @removed entries, 410 SyncStateNotFound for an
expired token) and getSchedule (busy items and the availabilityView string)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from tests.adapters.graph.fakes.graph_http import DEFAULT_PAGE, Req, Resp, applied
from tests.adapters.graph.fakes.graph_store import (
    FakeCalendar,
    GraphError,
    GraphStore,
    Mailbox,
    format_time,
    parse_time,
)

__all__ = ["CalendarViews", "DeltaState", "Page"]


@dataclass
class DeltaState:
    mailbox: str
    calendar: str
    start: datetime
    end: datetime
    snapshot: dict[str, str]


@dataclass
class Page:
    state: DeltaState
    items: list[dict[str, Any]]
    base_path: str


class CalendarViews:
    """Mixin of GraphFake: the read views over its store."""

    store: GraphStore
    url: str
    delta_tokens: dict[str, DeltaState]
    pages: dict[str, Page]

    def _window(self, req: Req) -> tuple[datetime, datetime]:
        start, end = (
            req.query.get("startDateTime") or req.query.get("startdatetime"),
            (req.query.get("endDateTime") or req.query.get("enddatetime")),
        )
        if not start or not end:
            raise GraphError(
                400,
                "ErrorInvalidParameter",
                "This request requires a time window specified by the "
                "query string parameters StartDateTime and EndDateTime.",
            )
        s, _ = parse_time({"dateTime": start.replace("Z", ""), "timeZone": "UTC"}, "startDateTime")
        e, _ = parse_time({"dateTime": end.replace("Z", ""), "timeZone": "UTC"}, "endDateTime")
        return s, e

    def _view(self, req: Req, cal: FakeCalendar, prefs: dict[str, str]) -> Resp:
        start, end = self._window(req)
        zone, text = prefs.get("outlook.timezone", "UTC"), prefs.get("outlook.body-content-type") == "text"
        expand = "singleValueExtendedProperties" in req.query.get("$expand", "")
        rows = [
            self.store.render(ev, zone, text, (iid, s, e), expand_props=expand)
            for ev, iid, s, e in self.store.instances(cal, start, end)
        ]
        size = int(req.query.get("$top") or prefs.get("odata.maxpagesize") or DEFAULT_PAGE)
        skip = int(req.query.get("$skip") or 0)
        body: dict[str, Any] = {"value": rows[skip : skip + size]}
        if skip + size < len(rows):
            query = {**req.query, "$skip": str(skip + size)}
            body["@odata.nextLink"] = f"{self.url}/v1.0/{req.path}?{urlencode(query)}"
        return Resp(200, body, {"Preference-Applied": applied(prefs)} if prefs else {})

    def _delta(self, req: Req, mbx: Mailbox, cal: FakeCalendar, prefs: dict[str, str]) -> Resp:
        zone, text = prefs.get("outlook.timezone", "UTC"), prefs.get("outlook.body-content-type") == "text"
        size = int(prefs.get("odata.maxpagesize") or DEFAULT_PAGE)
        gone = GraphError(
            410,
            "SyncStateNotFound",
            "The sync state generation is not found. The delta token is expired and data must be synchronized again.",
        )
        if "$skiptoken" in req.query:
            page = self.pages.pop(req.query["$skiptoken"], None)
            if page is None or page.state.mailbox != mbx.user.oid or page.state.calendar != cal.id:
                raise gone
        else:
            if "$deltatoken" in req.query:
                prior = self.delta_tokens.get(req.query["$deltatoken"])
                if prior is None or prior.mailbox != mbx.user.oid or prior.calendar != cal.id:
                    raise gone
                start, end, seen = prior.start, prior.end, prior.snapshot
            else:
                start, end = self._window(req)
                seen = {}
            current = self.store.instances(cal, start, end)
            snapshot = {iid: ev.instance_key(iid) for ev, iid, _, _ in current}
            items = [
                self.store.render(ev, zone, text, (iid, s, e))
                for ev, iid, s, e in current
                if seen.get(iid) != ev.instance_key(iid)
            ]
            items += [
                {"@odata.type": "#microsoft.graph.event", "id": iid, "@removed": {"reason": "deleted"}}
                for iid in seen
                if iid not in snapshot
            ]
            page = Page(DeltaState(mbx.user.oid, cal.id, start, end, snapshot), items, req.path)
        chunk, page.items = page.items[:size], page.items[size:]
        body: dict[str, Any] = {
            "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#Collection(event)",
            "value": chunk,
        }
        if page.items:
            token = secrets.token_urlsafe(24)
            self.pages[token] = page
            body["@odata.nextLink"] = f"{self.url}/v1.0/{page.base_path}?$skiptoken={token}"
        else:
            token = secrets.token_urlsafe(24)
            self.delta_tokens[token] = page.state
            body["@odata.deltaLink"] = f"{self.url}/v1.0/{page.base_path}?$deltatoken={token}"
        return Resp(200, body, {"Preference-Applied": applied(prefs)} if prefs else {})

    def _schedule(self, req: Req, mbx: Mailbox, prefs: dict[str, str]) -> Resp:
        if mbx.user.personal:
            raise GraphError(400, "ErrorInvalidRequest", "getSchedule is not supported for personal accounts.")
        body = req.body if isinstance(req.body, dict) else {}
        start, _ = parse_time(body.get("startTime"), "startTime")
        end, _ = parse_time(body.get("endTime"), "endTime")
        interval = int(body.get("availabilityViewInterval") or 30)
        zone = prefs.get("outlook.timezone", (body.get("startTime") or {}).get("timeZone", "UTC"))
        out = []
        for address in body.get("schedules") or []:
            target = self.store.resolve(str(address))
            if target is None or target.user.tenant_id != mbx.user.tenant_id:
                out.append(
                    {
                        "scheduleId": address,
                        "availabilityView": "",
                        "error": {
                            "message": "The user was not found.",
                            "responseCode": "ErrorMailRecipientNotFound",
                        },
                    }
                )
                continue
            items = []
            for ev, _iid, s, e in self.store.instances(target.default_calendar, start, end):
                show = ev.fields.get("showAs", "busy")
                if show == "free":
                    continue
                items.append(
                    {
                        "isPrivate": False,
                        "status": show,
                        "subject": ev.fields.get("subject", ""),
                        "start": _fmt(s, zone),
                        "end": _fmt(e, zone),
                    }
                )
            out.append(
                {
                    "scheduleId": address,
                    "availabilityView": _view_string(items, start, end, interval),
                    "scheduleItems": items,
                }
            )
        return Resp(200, {"value": out})


def _fmt(moment: datetime, zone: str) -> dict[str, str]:
    return format_time(moment, zone)


def _view_string(items: list[dict[str, Any]], start: datetime, end: datetime, interval: int) -> str:
    codes = {"free": "0", "tentative": "1", "busy": "2", "oof": "3", "workingElsewhere": "4"}
    slots = []
    step = interval * 60
    moment = start
    parsed = [
        (parse_time(i["start"], "s")[0], parse_time(i["end"], "e")[0], codes.get(i["status"], "2")) for i in items
    ]
    while moment < end:
        slot_end = datetime.fromtimestamp(moment.timestamp() + step, UTC)
        code = max((c for s, e, c in parsed if s < slot_end and e > moment), default="0")
        slots.append(code)
        moment = slot_end
    return "".join(slots)
