"""Publishing shifts into a team's Microsoft Teams Shifts schedule with application permissions.

Each shift is one `shift` of `/teams/{teamId}/schedule/shifts` (Schedule.ReadWrite.All):
- its `sharedShift` holds the event (display name, start, end, notes, a theme for busy/free) and its
  `draftShift` is left empty: clinicbot publishes what the schedule already published, so nothing
  waits in draft for a manager to share;
- `userId` is the person's Entra object id, and every request carries `MS-APP-ACTS-AS` with the
  object id of the team member the app acts as (required with application tokens on v1.0);
- the shifts belong to one scheduling group, "Clinic shifts (clinicbot)", made when missing and kept
  holding everyone with a shift;
- the schedule must exist and be enabled: a missing or disabled one is PUT (enabled, the practice's
  zone); while it is still provisioning, the write waits for the next publish.

Shifts has no transactionId. clinicbot stores each shift's id when the create lands, and ends each
shift's notes with a marker line "[clinicbot-shift:<24 hex>]" made from the source's key and the shift
id; a create whose answer was lost is found again by that marker (`marked`, in a window around the
shifts being created) and replaced, never duplicated. Shifts without clinicbot's marker are never touched.
Replacing is PUT (Shifts has no PATCH); deleting a shift already gone counts as done.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from adapters.graph.client import BatchItem, GraphClient
from adapters.graph.errors import PROVIDER
from sync.contract import BadPayload, NotFound, ProviderError, Refused, Unavailable
from sync.contract.shifts import PublishResult, ShiftEvent, TeamsAccess, TeamsShiftOp, TeamsTarget

__all__ = ["SCHEDULING_GROUP", "access", "lookalikes", "marked", "ready", "shift_body", "team_path", "write"]

#: The scheduling group clinicbot's shifts belong to.
SCHEDULING_GROUP = "Clinic shifts (clinicbot)"
_MARKER = re.compile(r"\[clinicbot-shift:([0-9a-f]{24})\]\s*$")
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def team_path(team_id: str) -> str:
    if not _GUID.match(team_id or ""):
        raise Refused(f"{PROVIDER}: {team_id!r} is not a team id (the team's group id, a GUID)", provider=PROVIDER)
    return f"/teams/{quote(team_id.lower(), safe='-')}"


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def shift_body(event: ShiftEvent, user_id: str, group_id: str, mark: str) -> dict[str, Any]:
    """The shift resource for one event: shared, not draft; busy shows blue and free shows gray."""
    return {
        "userId": user_id,
        "schedulingGroupId": group_id,
        "sharedShift": {
            "displayName": event.subject[:200],
            "startDateTime": _utc(event.start),
            "endDateTime": _utc(event.end),
            "notes": f"{event.body}\n[clinicbot-shift:{mark}]",
            "theme": "gray" if event.show_as == "free" else "blue",
            "activities": [],
        },
        "draftShift": None,
    }


def _headers(target_or_acts_as: TeamsTarget | str) -> dict[str, str]:
    acts_as = target_or_acts_as if isinstance(target_or_acts_as, str) else target_or_acts_as.acts_as
    return {"MS-APP-ACTS-AS": acts_as}


async def ready(client: GraphClient, team_id: str, acts_as: str, zone: str,
                user_ids: Sequence[str]) -> TeamsTarget:
    """The team's schedule enabled and clinicbot's scheduling group holding `user_ids`."""
    base, headers = team_path(team_id), _headers(acts_as)
    try:
        schedule: dict[str, Any] | None = await client.json("GET", f"{base}/schedule", headers=headers)
    except NotFound:
        schedule = None
    if schedule is None or schedule.get("enabled") is not True:
        schedule = await client.json("PUT", f"{base}/schedule", json={"enabled": True, "timeZone": zone},
                                     headers=headers)
    status = str(schedule.get("provisionStatus") or "Completed")
    if status != "Completed":
        raise Unavailable(f"{PROVIDER}: the team's Shifts schedule is {status} (provisioning); the next "
                          "publish writes the shifts", provider=PROVIDER)
    group: dict[str, Any] | None = None
    async for page in client.pages(f"{base}/schedule/schedulingGroups", headers=headers):
        for raw in page["value"]:
            if isinstance(raw, dict) and raw.get("displayName") == SCHEDULING_GROUP and raw.get("isActive", True):
                group = raw
    wanted = sorted(set(user_ids))
    if group is None:
        group = await client.json("POST", f"{base}/schedule/schedulingGroups", headers=headers,
                                  json={"displayName": SCHEDULING_GROUP, "isActive": True, "userIds": wanted})
    elif not set(wanted) <= set(group.get("userIds") or []):
        await client.request("PUT", f"{base}/schedule/schedulingGroups/{quote(str(group['id']), safe='')}",
                             headers=headers, json={"displayName": SCHEDULING_GROUP, "isActive": True,
                                                    "userIds": sorted({*(group.get("userIds") or []), *wanted})})
    if not isinstance(group.get("id"), str):
        raise BadPayload(f"{PROVIDER}: a scheduling group without an id", provider=PROVIDER)
    return TeamsTarget(team_id=team_id, acts_as=acts_as, group_id=group["id"])


#: Words in a 403's message that name a missing permission (Graph: "Missing role permissions on the
#: request ...", "... API requires one of 'Schedule.Read.All, Schedule.ReadWrite.All'").
_ROLE_WORDS = ("role", "schedule.readwrite", "schedule.read", "scope")
#: ... and words that point at who the app acts as instead ("MS-APP-ACTS-AS ...", "Sorry, you need to be
#: an admin to do this." with MissingAdminPermissions, "... is not a member of the team").
_ACTING_WORDS = ("acts-as", "admin", "member", "owner")


async def access(client: GraphClient, team_id: str, acts_as: str) -> TeamsAccess:
    """GET the team's schedule acting as `acts_as`, as one $batch item so Graph's words come back too."""
    item = BatchItem(id="1", method="GET", url=f"{team_path(team_id)}/schedule", headers=_headers(acts_as))
    answer = (await client.batch([item], sequential=False))[item.id]
    if answer.status < 400:
        enabled = isinstance(answer.body, dict) and answer.body.get("enabled") is True
        return TeamsAccess("ok", enabled=enabled)
    if answer.status == 404:
        return TeamsAccess("no_schedule", _words(answer.body))
    if answer.status == 403:
        words = _words(answer.body)
        lowered = words.lower()
        acting = any(w in lowered for w in _ACTING_WORDS)
        role = any(w in lowered for w in _ROLE_WORDS)
        return TeamsAccess("no_role" if role and not acting else "refused", words)
    err = answer.error(item)
    assert err is not None
    raise err


def _words(body: Any) -> str:
    """Graph's error code and message, for a person to read."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return ""
    return f"{error.get('code') or '-'}: {str(error.get('message') or '')[:300]}"


async def marked(client: GraphClient, target: TeamsTarget, start: datetime, end: datetime) -> dict[str, str]:
    """Shifts in [start, end] carrying a clinicbot marker: marker -> shift id."""
    params = {"$filter": f"sharedShift/startDateTime ge {_utc(start)} and sharedShift/endDateTime le {_utc(end)}"}
    found: dict[str, str] = {}
    async for page in client.pages(f"{team_path(target.team_id)}/schedule/shifts", params=params,
                                   headers=_headers(target)):
        for raw in page["value"]:
            if not isinstance(raw, dict) or not isinstance(raw.get("id"), str):
                continue
            notes = str(((raw.get("sharedShift") or {}).get("notes")) or "")
            m = _MARKER.search(notes)
            if m:
                found[m.group(1)] = raw["id"]
    return found


async def lookalikes(client: GraphClient, team_id: str, acts_as: str,
                     wanted: Sequence[tuple[str, datetime, datetime]]) -> list[tuple[str, datetime, datetime]]:
    """Shared shifts without clinicbot's marker of one of `wanted`'s (user id, start, end): another writer's.

    Names are not compared: a person's shift at the same times is the same shift to whoever reads the
    schedule, whatever another writer calls it. Draft shifts (a manager's, unseen by staff) are left out."""
    if not wanted:
        return []
    keys = {(user, start.astimezone(UTC), end.astimezone(UTC)) for user, start, end in wanted}
    start = min(k[1] for k in keys)
    end = max(k[2] for k in keys)
    params = {"$filter": f"sharedShift/startDateTime ge {_utc(start)} and sharedShift/endDateTime le {_utc(end)}"}
    found: list[tuple[str, datetime, datetime]] = []
    async for page in client.pages(f"{team_path(team_id)}/schedule/shifts", params=params,
                                   headers=_headers(acts_as)):
        for raw in page["value"]:
            shared = raw.get("sharedShift") if isinstance(raw, dict) else None
            if not isinstance(shared, dict) or _MARKER.search(str(shared.get("notes") or "")):
                continue
            try:
                key = (str(raw.get("userId") or ""), _moment(shared.get("startDateTime")),
                       _moment(shared.get("endDateTime")))
            except ValueError:
                continue  # a shift Graph could not give times for is nobody's duplicate
            if key in keys:
                found.append(key)
    return found


def _moment(value: Any) -> datetime:
    if not isinstance(value, str):
        raise ValueError("no time")
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError("no offset")
    return moment.astimezone(UTC)


async def write(client: GraphClient, target: TeamsTarget, ops: Sequence[TeamsShiftOp]) -> list[PublishResult]:
    """Create, replace and delete shifts in $batch requests of up to 20 (4 running at a time).

    One batch at a time per team, on purpose: Graph's Teams service limits allow an app at most 4
    requests per second on a given team (and 30 rps of writes under /teams/{id}/schedule per tenant),
    so batches side by side would only draw 429s; a throttled item is resent after its Retry-After."""
    base = f"{team_path(target.team_id)}/schedule/shifts"
    items: list[BatchItem] = []
    for n, op in enumerate(ops):
        if op.kind == "delete":
            items.append(BatchItem(id=str(n), method="DELETE", url=f"{base}/{quote(op.remote_id or '', safe='')}",
                                   headers=_headers(target)))
            continue
        if op.event is None or not op.user_id:
            raise ValueError(f"a Teams shift {op.kind} needs its event and user")
        body = shift_body(op.event, op.user_id, target.group_id, op.marker)
        if op.kind == "create":
            items.append(BatchItem(id=str(n), method="POST", url=base, body=body, headers=_headers(target),
                                   creating=True))
        else:
            items.append(BatchItem(id=str(n), method="PUT", url=f"{base}/{quote(op.remote_id or '', safe='')}",
                                   body=body, headers=_headers(target)))
    answers = await client.batch(items, sequential=False) if items else {}
    out: list[PublishResult] = []
    for item, op in zip(items, ops, strict=True):
        answer = answers[item.id]
        err: ProviderError | None = answer.error(item)
        remote_id = op.remote_id
        if op.kind == "delete" and isinstance(err, NotFound):
            err = None  # already gone: what a delete wants
        elif err is None and op.kind == "create":
            found = answer.body.get("id") if isinstance(answer.body, dict) else None
            if isinstance(found, str):
                remote_id = found
            else:
                err = BadPayload(f"{PROVIDER}: a shift create answered without an id", provider=PROVIDER)
        out.append(PublishResult(shift_key=op.shift_key, kind=op.kind, remote_id=remote_id, error=err))
    return out
