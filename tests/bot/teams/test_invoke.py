"""Universal Actions: Action.Execute invokes answered with the refreshed card (the botbuilder
4.17 invoke-body bug worked around), the Action.Submit fallback updating the card in place, and
commands from 1:1, group and channel conversations."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer
from botbuilder.core import ActivityHandler, TurnContext
from botbuilder.integration.aiohttp import CloudAdapter
from botbuilder.schema import AdaptiveCardInvokeResponse, AdaptiveCardInvokeValue
from sqlalchemy import select

from bot.teams.auth import build_auth
from sync.store.model import Appointment, Practice, Practitioner
from tests.bot.teams.conftest import Teams, activity, card_nodes, is_action, mention_text


async def _appointment(t: Teams) -> Appointment:
    """Make user 1 the practice's first (admin) user and give the practice one appointment tomorrow."""
    status, _ = await t.post(activity(t.connector.service_url, text="help"))
    assert status in (200, 201)
    async with t.core.store.session() as session:
        practice = await session.scalar(select(Practice).order_by(Practice.id).limit(1))
        assert practice is not None
        doc = Practitioner(practice_id=practice.id, name="Dr Lee", handle="dr-lee", timezone="UTC")
        session.add(doc)
        await session.flush()
        start = datetime.combine(datetime.now(UTC).date() + timedelta(days=1), time(10, 0), UTC)
        appt = Appointment(
            practice_id=practice.id,
            practitioner_id=doc.id,
            start=start,
            end=start + timedelta(minutes=30),
            client_name="Ann Example",
            service="Check-up",
            tzid="UTC",
            status="confirmed",
        )
        session.add(appt)
        await session.flush()
        return appt


def _buttons(card: dict[str, Any]) -> list[dict[str, Any]]:
    return card_nodes(card.get("body", []), is_action) + card_nodes(card.get("actions", []), is_action)


def _invoke(
    t: Teams, button: dict[str, Any], inputs: dict[str, Any] | None = None, **kw: Any
) -> dict[str, Any]:
    data = {**button["data"], **(inputs or {})}
    return activity(
        t.connector.service_url,
        type="invoke",
        name="adaptiveCard/action",
        value={
            "action": {"type": "Action.Execute", "verb": button["verb"], "data": data},
            "trigger": "manual",
        },
        **kw,
    )


async def _agenda_card(t: Teams, **kw: Any) -> dict[str, Any]:
    act = activity(t.connector.service_url, text="tomorrow", **kw)
    status, _ = await t.post(act)
    assert status in (200, 201)
    return t.connector.recorded.activities(act["conversation"]["id"])[-1]["attachments"][0]["content"]


async def test_action_execute_gets_the_refreshed_card_in_the_invoke_response(teams: Teams) -> None:
    appt = await _appointment(teams)
    card = await _agenda_card(teams)
    cancel = next(b for b in _buttons(card) if b["type"] == "Action.Execute" and b["verb"] == "cancel")
    assert cancel["fallback"]["type"] == "Action.Submit"

    status, body = await teams.post(_invoke(teams, cancel))
    assert status == 200, body  # stock botbuilder-integration-aiohttp 4.17 answers 500 here
    assert body["statusCode"] == 200 and body["type"] == "application/vnd.microsoft.card.adaptive"
    confirm = next(b for b in _buttons(body["value"]) if b.get("verb") == "cancel_confirm")

    status, body = await teams.post(_invoke(teams, confirm, {"r": "patient sick"}))
    assert status == 200, body
    assert f"A-{appt.id}" in str(body["value"])
    async with teams.core.store.session() as session:
        stored = await session.get(Appointment, appt.id)
        assert stored is not None and stored.status == "cancelled"


async def test_stale_card_action_changes_nothing(teams: Teams) -> None:
    appt = await _appointment(teams)
    card = await _agenda_card(teams)
    cancel = next(b for b in _buttons(card) if b.get("verb") == "cancel")
    stale = {
        **cancel,
        "verb": "cancel_confirm",
        "data": {**cancel["data"], "verb": "cancel_confirm", "v": 99},
    }
    status, _body = await teams.post(_invoke(teams, stale))
    assert status == 200
    async with teams.core.store.session() as session:
        stored = await session.get(Appointment, appt.id)
        assert stored is not None and stored.status == "confirmed"


async def test_malformed_button_data_gets_an_error_card(teams: Teams) -> None:
    await _appointment(teams)
    bogus = {"verb": "cancel_confirm", "data": {"verb": "cancel_confirm", "a": "DROP TABLE", "v": 1}}
    status, body = await teams.post(_invoke(teams, bogus))
    assert status == 200
    assert "not valid" in str(body["value"])


async def test_submit_fallback_updates_the_card_in_place(teams: Teams) -> None:
    await _appointment(teams)
    card = await _agenda_card(teams)
    cancel = next(b for b in _buttons(card) if b.get("verb") == "cancel")["fallback"]
    act = activity(teams.connector.service_url, value=cancel["data"], replyToId="card-activity-1")
    status, _ = await teams.post(act)
    assert status in (200, 201)
    updates = teams.connector.recorded.updates()
    assert updates and updates[-1][1] == "card-activity-1"
    assert "Cancel A-" in str(updates[-1][2]["attachments"][0]["content"])


async def test_reschedule_form_shows_conflicts_on_the_card(teams: Teams) -> None:
    appt = await _appointment(teams)
    async with teams.core.store.session() as session:
        other = Appointment(
            practice_id=appt.practice_id,
            practitioner_id=appt.practitioner_id,
            start=appt.start + timedelta(hours=2),
            end=appt.start + timedelta(hours=3),
            client_name="Bo Other",
            service="Check-up",
            tzid="UTC",
            status="confirmed",
        )
        session.add(other)
    card = await _agenda_card(teams)
    open_form = next(b for b in _buttons(card) if b.get("verb") == "reschedule" and b["data"]["a"] == appt.id)
    status, body = await teams.post(_invoke(teams, open_form))
    form = body["value"]
    kinds = {e.get("type") for e in form["body"]}
    assert {"Input.Date", "Input.Time", "Input.ChoiceSet"} <= kinds
    submit = next(b for b in _buttons(form) if b.get("verb") == "reschedule_submit")
    taken = {"d": (appt.start + timedelta(hours=2)).date().isoformat(), "t": "12:00"}
    status, body = await teams.post(_invoke(teams, submit, taken))
    assert status == 200
    again = body["value"]
    assert any(e.get("color") == "Attention" for e in again["body"]), "the conflict is shown on the card"
    assert any(b.get("verb") == "pick_slot" for b in _buttons(again)), "free slots are offered"
    async with teams.core.store.session() as session:
        stored = await session.get(Appointment, appt.id)
        assert stored is not None and stored.start == appt.start


async def test_channel_message_with_mention_runs_the_command_and_card_refreshes_per_user(
    teams: Teams,
) -> None:
    await _appointment(teams)
    text, entities = mention_text("tomorrow")
    act = activity(teams.connector.service_url, text=text, entities=entities, kind="channel")
    status, _ = await teams.post(act)
    assert status in (200, 201)
    card = teams.connector.recorded.activities(act["conversation"]["id"])[-1]["attachments"][0]["content"]
    assert card["refresh"]["action"]["verb"] == "refresh"
    assert "29:user-1" in card["refresh"]["userIds"]
    # A colleague without a role opens the shared card: Teams asks for their own view.
    refresh = {"verb": "refresh", "data": card["refresh"]["action"]["data"]}
    status, body = await teams.post(_invoke(teams, refresh, kind="channel", sender=2))
    assert status == 200
    assert not any(b.get("verb") in ("cancel", "reschedule") for b in _buttons(body["value"]))


async def test_group_chat_and_bad_command(teams: Teams) -> None:
    act = activity(teams.connector.service_url, text="frobnicate everything", kind="groupChat")
    status, _ = await teams.post(act)
    assert status in (200, 201)
    reply = teams.connector.recorded.activities(act["conversation"]["id"])[-1]
    content = str(reply["attachments"][0]["content"])
    assert "Attention" in content and "Traceback" not in content


class _StockInvokeBot(ActivityHandler):
    async def on_adaptive_card_invoke(
        self, turn_context: TurnContext, invoke_value: AdaptiveCardInvokeValue
    ) -> AdaptiveCardInvokeResponse:
        card = {"type": "AdaptiveCard", "version": "1.5", "body": []}
        return AdaptiveCardInvokeResponse(
            status_code=200, type="application/vnd.microsoft.card.adaptive", value=card
        )


async def test_stock_cloud_adapter_still_fails_invokes_with_a_body(teams_open: Teams) -> None:
    """The bug we work around: if this starts passing, botbuilder fixed it and the workaround can go."""
    adapter = CloudAdapter(build_auth(teams_open.settings))
    bot = _StockInvokeBot()

    async def messages(request: web.Request) -> web.StreamResponse:
        response = await adapter.process(request, bot)
        assert response is not None
        return response

    app = web.Application()
    app.router.add_post("/api/messages", messages)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        button = {"verb": "details", "data": {"verb": "details", "a": 1}}
        async with teams_open.session.post(
            server.make_url("/api/messages"), json=_invoke(teams_open, button)
        ) as resp:
            assert resp.status == 500
    finally:
        await server.close()


async def test_a_press_on_a_channel_card_answers_the_presser_privately(teams: Teams) -> None:
    appt = await _appointment(teams)  # user 1 (admin) has a 1:1 chat with the bot: a:personal-1
    text, entities = mention_text("tomorrow")
    shared = activity(teams.connector.service_url, text=text, entities=entities, kind="channel")
    status, _ = await teams.post(shared)
    assert status in (200, 201)
    channel_id = shared["conversation"]["id"]
    card = teams.connector.recorded.activities(channel_id)[-1]["attachments"][0]["content"]
    in_channel = len(teams.connector.recorded.activities(channel_id))

    details = next(b for b in _buttons(card) if b.get("verb") == "details" and b["data"]["a"] == appt.id)
    status, body = await teams.post(_invoke(teams, details, kind="channel"))
    assert status == 200, body
    # The shared card stays as it is: the answer is a message to the presser, not a replacement card.
    assert body["type"] == "application/vnd.microsoft.activity.message", body
    assert "private" in body["value"]
    dm = teams.connector.recorded.activities("a:personal-1")[-1]["attachments"][0]["content"]
    assert f"A-{appt.id}" in str(dm) and "Check-up" in str(dm)

    # The Action.Submit fallback (older clients) leaves the shared card alone too.
    cancel = next(b for b in _buttons(card) if b.get("verb") == "cancel")["fallback"]
    press = activity(teams.connector.service_url, value=cancel["data"], replyToId="shared-card", kind="channel")
    status, _ = await teams.post(press)
    assert status in (200, 201)
    assert not teams.connector.recorded.updates(), "nobody's card in the channel was replaced"
    assert len(teams.connector.recorded.activities(channel_id)) == in_channel
    assert "Cancel A-" in str(teams.connector.recorded.activities("a:personal-1")[-1]["attachments"][0]["content"])


async def test_a_channel_press_by_someone_without_a_private_chat_opens_one(teams: Teams) -> None:
    appt = await _appointment(teams)
    text, entities = mention_text("tomorrow")
    shared = activity(teams.connector.service_url, text=text, entities=entities, kind="channel")
    await teams.post(shared)
    card = teams.connector.recorded.activities(shared["conversation"]["id"])[-1]["attachments"][0]["content"]
    details = next(b for b in _buttons(card) if b.get("verb") == "details" and b["data"]["a"] == appt.id)
    status, body = await teams.post(_invoke(teams, details, kind="channel", sender=2))  # no role, no 1:1 yet
    assert status == 200 and body["type"] == "application/vnd.microsoft.activity.message"
    created = teams.connector.recorded.created_conversations
    assert created and created[-1]["members"][0]["id"] == "29:user-2"
    assert not teams.connector.recorded.updates()
