"""Microsoft Teams Shifts in the fake Graph: a team's schedule, its scheduling groups and its shifts.

Documented behaviour it implements (learn.microsoft.com/graph/api/resources/shift, schedule-put,
schedule-post-shifts, shift-put, shift-delete, schedule-list-shifts):
- /teams/{teamId}/schedule: GET answers 404 until the schedule exists; PUT creates or replaces it
  (`enabled`, `timeZone`) and answers it with `provisionStatus` "Completed" (the fake provisions at once);
- /schedule/schedulingGroups: list, create (201), get, replace (PUT, 204);
- /schedule/shifts: list (with a $filter on sharedShift/startDateTime ge and sharedShift/endDateTime le),
  create (201 with the shift), get, replace (PUT, 204; 404 for an unknown shift), delete (204; 404);
- a shift needs a userId of a team member, an existing schedulingGroupId, and a sharedShift or
  draftShift lasting at least 1 minute and at most 24 hours (400 otherwise);
- application tokens need the Schedule.ReadWrite.All role (403 otherwise) and an MS-APP-ACTS-AS header
  naming a team member by object id (the v1.0 pages mark it "Required only if the authorization token
  is an application token"); delegated tokens need the caller to be a member.

The error codes and messages for a missing schedule, a missing MS-APP-ACTS-AS header and a shift outside
1 minute .. 24 hours are the fake's own wording (Graph documents the conditions, not the bodies).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.adapters.graph.fakes.graph_http import Req, Resp
from tests.adapters.graph.fakes.graph_login import User
from tests.adapters.graph.fakes.graph_store import GraphError

__all__ = ["FakeTeam", "TeamsFake"]

_WINDOW = re.compile(
    r"sharedShift/startDateTime ge (?P<start>[0-9T:.\-]+Z) and sharedShift/endDateTime le (?P<end>[0-9T:.\-]+Z)$"
)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _moment(value: Any, what: str) -> datetime:
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        raise GraphError(400, "BadRequest", f"Invalid {what}.") from None


def _collection(req: Req, rest: list[str], items: dict[str, dict[str, Any]], build: Callable[[str], dict[str, Any]],
                *, new_id: str, missing: str, keeps_created: bool = False, deletable: bool = False) -> Resp:
    """A schedule's collection (scheduling groups, shifts): list (GET), create (POST, 201 with the item);
    one item: get, replace (PUT, 204; `keeps_created` keeps its createdDateTime), delete (204, where
    `deletable`); 404 with `missing` for an unknown item, 405 for any other method."""
    if not rest:
        if req.method == "GET":
            return Resp(200, {"value": list(items.values())})
        if req.method == "POST":
            made = build(new_id + str(uuid.uuid4()))
            items[made["id"]] = made
            return Resp(201, made)
    elif len(rest) == 1:
        key = rest[0]
        found = items.get(key)
        if found is None:
            raise GraphError(404, "NotFound", missing)
        if req.method == "GET":
            return Resp(200, found)
        if req.method == "PUT":
            replaced = build(key)
            if keeps_created:
                replaced["createdDateTime"] = found["createdDateTime"]
            items[key] = replaced
            return Resp(204)
        if req.method == "DELETE" and deletable:
            del items[key]
            return Resp(204)
    raise GraphError(405, "MethodNotAllowed", "Method not allowed.")


@dataclass
class FakeTeam:
    id: str
    tenant_id: str
    members: dict[str, User]
    schedule: dict[str, Any] | None = None
    groups: dict[str, dict[str, Any]] = field(default_factory=dict)
    shifts: dict[str, dict[str, Any]] = field(default_factory=dict)


class TeamsFake:
    def __init__(self) -> None:
        self.teams: dict[str, FakeTeam] = {}

    def add_team(self, tenant_id: str, members: list[User]) -> FakeTeam:
        team = FakeTeam(str(uuid.uuid4()), tenant_id, {u.oid: u for u in members})
        self.teams[team.id] = team
        return team

    def route(self, req: Req, segs: list[str]) -> Resp:
        team = self.teams.get(segs[0]) if segs else None
        if team is None:
            raise GraphError(404, "NotFound", f"No team found with Group Id {segs[0] if segs else ''}")
        self._allow(req, team)
        tail = segs[1:]
        if tail == ["schedule"]:
            return self._schedule(req, team)
        if tail[:1] != ["schedule"] or len(tail) < 2:
            raise GraphError(400, "BadRequest", "Unsupported teams request.")
        if team.schedule is None or not team.schedule.get("enabled"):
            raise GraphError(404, "NotFound", "The team has no enabled Shifts schedule.")
        if tail[1] == "schedulingGroups":
            return self._groups(req, team, tail[2:])
        if tail[1] == "shifts":
            return self._shifts(req, team, tail[2:])
        raise GraphError(400, "BadRequest", "Unsupported schedule request.")

    def _allow(self, req: Req, team: FakeTeam) -> None:
        p = req.principal
        if p.user is not None:
            if p.user.oid not in team.members:
                raise GraphError(403, "Forbidden", "The caller is not a member of the team.")
            return
        if "Schedule.ReadWrite.All" not in p.roles or p.tenant_id != team.tenant_id:
            raise GraphError(403, "Forbidden", "Missing role permissions on the request: Schedule.ReadWrite.All.")
        acting = req.header("MS-APP-ACTS-AS")
        if not acting:
            raise GraphError(403, "Forbidden", "MS-APP-ACTS-AS header is required with an application token.")
        if acting not in team.members:
            raise GraphError(403, "Forbidden", "The MS-APP-ACTS-AS user is not a member of the team.")

    def _schedule(self, req: Req, team: FakeTeam) -> Resp:
        if req.method == "GET":
            if team.schedule is None:
                raise GraphError(404, "NotFound", "Schedule not found.")
            return Resp(200, team.schedule)
        if req.method == "PUT":
            body = req.body if isinstance(req.body, dict) else {}
            if not isinstance(body.get("enabled"), bool) or not isinstance(body.get("timeZone"), str):
                raise GraphError(400, "BadRequest", "A schedule needs enabled and timeZone.")
            team.schedule = {"id": team.id, "enabled": body["enabled"], "timeZone": body["timeZone"],
                             "provisionStatus": "Completed", "provisionStatusCode": None}
            return Resp(200, team.schedule)
        raise GraphError(405, "MethodNotAllowed", "Method not allowed.")

    def _groups(self, req: Req, team: FakeTeam, rest: list[str]) -> Resp:
        return _collection(req, rest, team.groups, lambda key: self._group_body(req, team, key),
                           new_id="TAG_", missing="Scheduling group not found.")

    def _group_body(self, req: Req, team: FakeTeam, group_id: str) -> dict[str, Any]:
        body = req.body if isinstance(req.body, dict) else {}
        name, users = body.get("displayName"), body.get("userIds") or []
        if not isinstance(name, str) or not name.strip():
            raise GraphError(400, "BadRequest", "displayName is required.")
        if not isinstance(users, list) or any(u not in team.members for u in users):
            raise GraphError(400, "BadRequest", "Every userId must be a member of the team.")
        return {"id": group_id, "displayName": name, "isActive": bool(body.get("isActive", True)),
                "userIds": list(users), "lastModifiedDateTime": _now()}

    def _shifts(self, req: Req, team: FakeTeam, rest: list[str]) -> Resp:
        if not rest and req.method == "GET":
            return Resp(200, {"value": self._listed(req, team)})
        return _collection(req, rest, team.shifts, lambda key: self._shift_body(req, team, key),
                           new_id="SHFT_", missing="Shift not found.", keeps_created=True, deletable=True)

    def _listed(self, req: Req, team: FakeTeam) -> list[dict[str, Any]]:
        shifts = list(team.shifts.values())
        wanted = req.query.get("$filter")
        if not wanted:
            return shifts
        m = _WINDOW.match(wanted.strip())
        if m is None:
            raise GraphError(400, "BadRequest", "Unsupported $filter on shifts.")
        start, end = _moment(m["start"], "startDateTime"), _moment(m["end"], "endDateTime")
        out = []
        for s in shifts:
            item = s.get("sharedShift") or {}
            if _moment(item.get("startDateTime"), "startDateTime") >= start and \
                    _moment(item.get("endDateTime"), "endDateTime") <= end:
                out.append(s)
        return out

    def _shift_body(self, req: Req, team: FakeTeam, shift_id: str) -> dict[str, Any]:
        body = req.body if isinstance(req.body, dict) else {}
        if body.get("userId") not in team.members:
            raise GraphError(400, "BadRequest", "userId must be a member of the team.")
        if body.get("schedulingGroupId") not in team.groups:
            raise GraphError(400, "BadRequest", "schedulingGroupId does not name a scheduling group of the team.")
        items = [body.get(k) for k in ("sharedShift", "draftShift") if body.get(k) is not None]
        if not items:
            raise GraphError(400, "BadRequest", "A shift needs a sharedShift or a draftShift.")
        for item in items:
            if not isinstance(item, dict):
                raise GraphError(400, "BadRequest", "A shift item must be an object.")
            length = _moment(item.get("endDateTime"), "endDateTime") - _moment(item.get("startDateTime"),
                                                                                "startDateTime")
            if not timedelta(minutes=1) <= length <= timedelta(hours=24):
                raise GraphError(400, "BadRequest", "A shift lasts at least 1 minute and at most 24 hours.")
        now = _now()
        return {"id": shift_id, "userId": body["userId"], "schedulingGroupId": body["schedulingGroupId"],
                "sharedShift": body.get("sharedShift"), "draftShift": body.get("draftShift"),
                "isStagedForDeletion": False, "createdDateTime": now, "lastModifiedDateTime": now}
