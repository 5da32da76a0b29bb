"""Teams end to end against real components: Bot Framework authentication on (tokens signed by the
fake connector's key, served through its OpenID metadata), a practice whose source calendar lives
on a real Radicale, synced by the server's own sync worker.

"today" answers with the agenda card; Action.Execute invokes open the reschedule form and submit
it (answered 200 with the card in the body: the botbuilder invoke-body workaround); a taken slot
is shown on the card with free slots and nothing moves; a free slot moves the booking on Radicale
(source and mirror), and the audit names the Teams user.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from bot.app import build_app
from sync.boot import open_core
from tests.adapters.caldav.fakes.radicale import RadicaleServer
from tests.bot.teams.conftest import (
    APP_ID,
    APP_PASSWORD,
    TENANT,
    Teams,
    activity,
    card_nodes,
    is_action,
    teams_settings,
)
from tests.conftest import drop_schema
from tests.e2e.conftest import DAY, Practice, at, booking, connect_practice
from tests.fakes.bot_connector import FakeBotConnector


@pytest.fixture
def connector() -> Iterator[FakeBotConnector]:
    with FakeBotConnector(app_id=APP_ID, app_password=APP_PASSWORD) as fake:
        yield fake


@pytest.fixture
async def teams(
    backend: str,
    tmp_path: Path,
    connector: FakeBotConnector,
    radicale: RadicaleServer,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[tuple[Teams, Practice]]:
    """The real server (sync worker included), Teams auth on, the practice connected to Radicale."""
    from sync.store.migrate import upgrade

    monkeypatch.setenv("REQUESTS_CA_BUNDLE", connector.ca_path)
    settings = teams_settings(backend, tmp_path, connector, allow_private_urls=True, sync_poll_seconds=0)
    core = open_core(settings)
    await upgrade(core.store)
    clinic = await connect_practice(core, radicale)
    app = build_app(settings, core=core)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as session:
            url = str(server.make_url("")).rstrip("/")
            yield Teams(url, connector, core, settings, app, session), clinic
    finally:
        await server.close()
        await core.close()
        await drop_schema(settings)


def _actions(card: dict[str, Any]) -> list[dict[str, Any]]:
    return card_nodes(card, is_action)


def _facts(card: dict[str, Any]) -> list[dict[str, str]]:
    return [f for e in card["body"] if e.get("type") == "FactSet" for f in e["facts"]]


def _invoke(t: Teams, button: dict[str, Any], inputs: dict[str, Any] | None = None, sender: int = 1) -> dict[str, Any]:
    """What Teams posts when an Action.Execute button is pressed (inputs merged into its data)."""
    return activity(
        t.connector.service_url,
        type="invoke",
        name="adaptiveCard/action",
        value={
            "action": {"type": "Action.Execute", "verb": button["verb"], "data": {**button["data"], **(inputs or {})}},
            "trigger": "manual",
        },
        sender=sender,
    )


async def test_today_then_reschedule_moves_the_radicale_booking(teams: tuple[Teams, Practice]) -> None:
    t, clinic = teams
    await clinic.put_booking(booking("visit-1", at(10), 30, "Jane Roe"))
    await clinic.put_booking(booking("visit-2", at(11), 60, "John Doe"))
    await clinic.sync()
    jane = await clinic.appointment("visit-1")
    assert [c.event.start for c in await clinic.events(clinic.mirror_url)] == [at(10), at(11)]

    # "today" in a 1:1 chat, with a valid channel token: the reply card lists the appointment.
    today = activity(t.connector.service_url, text="today")
    status, _ = await t.post(today)
    assert status in (200, 201)
    card = t.connector.recorded.activities(today["conversation"]["id"])[-1]["attachments"][0]["content"]
    assert jane.ref in str(card) and "Jane Roe" in str(card) and "John Doe" in str(card)
    assert await clinic.practices() == [("Lee Clinic", None, TENANT)]  # bound on first contact
    verbs = {(b.get("verb"), (b.get("data") or {}).get("a")) for b in _actions(card) if b["type"] == "Action.Execute"}
    assert {("reschedule", jane.id), ("cancel", jane.id), ("details", jane.id)} <= verbs

    # Reschedule opens the form, answered in the invoke response body.
    open_form = next(b for b in _actions(card) if b.get("verb") == "reschedule" and b["data"]["a"] == jane.id)
    status, body = await t.post(_invoke(t, open_form))
    assert status == 200, body
    assert body["statusCode"] == 200 and body["type"] == "application/vnd.microsoft.card.adaptive"
    form = body["value"]
    assert {"Input.Date", "Input.Time", "Input.ChoiceSet"} <= {e.get("type") for e in form["body"]}
    submit = next(b for b in _actions(form) if b.get("verb") == "reschedule_submit")

    # A colleague without a role submitting the same form gets an error card; nothing changes.
    status, body = await t.post(_invoke(t, submit, {"d": DAY.isoformat(), "t": "16:00"}, sender=2))
    assert status == 200 and "no role in this practice" in str(body["value"])
    assert (await clinic.appointment("visit-1")).start == at(10)

    # A taken slot: shown on the card with free slots; nothing moves.
    status, body = await t.post(_invoke(t, submit, {"d": DAY.isoformat(), "t": "11:15"}))
    assert status == 200, body
    again = body["value"]
    assert any(e.get("color") == "Attention" and "is taken" in str(e.get("text")) for e in again["body"])
    slots = [b for b in _actions(again) if b.get("verb") == "pick_slot"]
    assert slots and "12:00" in slots[0]["title"]
    assert (await clinic.appointment("visit-1")).start == at(10)
    await clinic.outbox_settled()
    assert [i.event.start for i in await clinic.events(clinic.source_url)] == [at(10), at(11)]

    # A free slot: the invoke answers 200 with the updated card; the change reaches Radicale.
    status, body = await t.post(_invoke(t, submit, {"d": DAY.isoformat(), "t": "16:00"}))
    assert status == 200, body
    assert body["statusCode"] == 200 and f"Moved {jane.ref}" in str(body["value"])
    assert {"title": "Bookings (source)", "value": "pending"} in _facts(body["value"])
    await clinic.outbox_settled()
    source = {i.event.uid: i.event for i in await clinic.events(clinic.source_url)}
    assert source["visit-1"].start == at(16) and source["visit-2"].start == at(11)
    assert sorted(c.event.start for c in await clinic.events(clinic.mirror_url)) == [at(11), at(16)]

    [entry] = await clinic.audit("appointment.rescheduled")
    assert entry.actor == f"teams:{TENANT}/29:user-1" and entry.appointment_id == jane.id

    # The next sync takes our own source write as nothing new.
    await clinic.sync()
    after = await clinic.appointment("visit-1")
    assert after.start == at(16) and after.version == jane.version + 1
    assert len(await clinic.audit("appointment.rescheduled")) == 1
    # ...and the mirror copy read back is our own write, not a hand edit: no conflict, no update.
    assert await clinic.sync_history() == [
        "appointment.created",
        "appointment.created",
        "appointment.rescheduled",
        "sync.source_reschedule",
    ]
