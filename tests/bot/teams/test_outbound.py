"""The fast reply path writes exactly what the generated msrest operations write: same JSON
body, URL, headers, result and errors; values only msrest knows how to write take its path."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from botbuilder.core import MessageFactory, TurnContext
from botbuilder.schema import (
    Activity,
    CardAction,
    ChannelAccount,
    Mention,
    ResourceResponse,
    SuggestedActions,
)
from botframework.connector import AsyncBfPipeline, BotFrameworkConnectorConfiguration
from botframework.connector.aio import ConnectorClient
from botframework.connector.models import ErrorResponseException

from bot.teams.auth import BotTokenCredentials
from bot.teams.outbound import FastConversations, activity_json
from bot.teams.proactive import CARD as CARD_TYPE
from bot.teams.proactive import card_activity
from bot.teams.transport import SharedSessionSender

INBOUND = {
    "type": "message",
    "id": "1700000000001",
    "serviceUrl": "https://smba.trafficmanager.net/emea/",
    "channelId": "msteams",
    "from": {"id": "29:ann", "name": "Ann", "aadObjectId": "00000000-0000-0000-0000-000000000001"},
    "conversation": {
        "id": "19:abc@thread.tacv2;messageid=1700000000001",
        "conversationType": "channel",
        "tenantId": "tenant-1",
        "isGroup": True,
    },
    "recipient": {"id": "28:bot", "name": "clinicbot"},
    "channelData": {"tenant": {"id": "tenant-1"}},
    "locale": "en-GB",
    "text": "today",
}
CARD = {"type": "AdaptiveCard", "version": "1.5", "body": [{"type": "TextBlock", "text": "é ✓", "wrap": True}]}


def _reply(outgoing: Activity) -> Activity:
    """What TurnContext.send_activity hands the adapter: the reference applied to the reply."""
    inbound = Activity().deserialize(INBOUND)
    ref = TurnContext.get_conversation_reference(inbound)
    sent = TurnContext.apply_conversation_reference(outgoing, ref)
    sent.id = None
    return sent


def _activities() -> dict[str, Activity]:
    mention = Mention(mentioned=ChannelAccount(id="29:ann", name="Ann"), text="<at>Ann</at>", type="mention")
    text = MessageFactory.text("<at>Ann</at> done")
    text.entities = [mention]
    text.suggested_actions = SuggestedActions(actions=[CardAction(type="imBack", title="Yes", value="yes")])
    summary = card_activity(CARD, "Agenda for tomorrow")
    return {
        "card": _reply(card_activity(CARD)),
        "card_with_summary": _reply(summary),
        "text_with_mention": _reply(text),
    }


def _msrest_body(activity: Activity) -> Any:
    client = ConnectorClient(BotTokenCredentials("", "", "https://login.invalid/x", "s"), base_url="http://x")
    return client._serialize.body(activity, "Activity")


@pytest.mark.parametrize("name", sorted(_activities()))
def test_json_is_what_msrest_writes(name: str) -> None:
    activity = _activities()[name]
    expected = _msrest_body(_activities()[name])
    assert activity_json(activity) == expected


def test_values_only_msrest_can_write_take_its_path() -> None:
    stamped = _reply(card_activity(CARD))
    stamped.timestamp = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    assert activity_json(stamped) is None
    loose = _reply(card_activity(CARD))
    loose.from_property = {"id": "28:bot"}  # a dict where a model belongs: msrest converts it
    assert activity_json(loose) is None
    odd = _reply(card_activity({"type": "AdaptiveCard", "at": datetime(2026, 1, 1, tzinfo=UTC)}))
    assert activity_json(odd) is None


class _Capture:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.answer: tuple[int, Any] = (200, {"id": "reply-1"})

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append(
            {
                "method": request.method,
                "path": request.raw_path,
                "headers": {k: v for k, v in request.headers.items() if k not in ("Host",)},
                "body": await request.read(),
            }
        )
        status, body = self.answer
        return web.json_response(body, status=status)


@pytest.fixture
async def capture() -> AsyncIterator[tuple[_Capture, str]]:
    cap = _Capture()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", cap.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield cap, str(server.make_url("/emea/"))
    finally:
        await server.close()


async def _clients(
    session: aiohttp.ClientSession, base_url: str
) -> tuple[ConnectorClient, ConnectorClient, FastConversations]:
    creds = BotTokenCredentials("app-id", "secret", "https://login.invalid/tenant", "https://api.botframework.com")
    creds._token, creds._expires_at = "tok-123", 4102444800.0

    def build() -> ConnectorClient:
        config = BotFrameworkConnectorConfiguration(
            creds, base_url, pipeline_type=AsyncBfPipeline, sender=SharedSessionSender(session)
        )
        client = ConnectorClient(creds, custom_configuration=config)
        client.config.add_user_agent("clinicbot")
        return client

    stock, fast = build(), build()
    fast.conversations = fast_ops = FastConversations(fast.conversations, fast.config.sender, creds)
    return stock, fast, fast_ops


@pytest.mark.parametrize("operation", ["send_to_conversation", "reply_to_activity", "update_activity"])
async def test_wire_request_and_result_match_the_generated_operation(
    capture: tuple[_Capture, str], operation: str
) -> None:
    cap, base_url = capture
    conversation = INBOUND["conversation"]["id"]  # type: ignore[index]
    async with aiohttp.ClientSession() as session:
        stock, fast, fast_ops = await _clients(session, base_url)
        results = []
        for client in (stock, fast):
            call = getattr(client.conversations, operation)
            args = (
                (conversation, _activities()["card"])
                if operation == "send_to_conversation"
                else (conversation, "1700000000001", _activities()["card"])
            )
            results.append(await call(*args))
    assert fast_ops.fast_sends == 1
    assert len(cap.requests) == 2
    assert cap.requests[0] == cap.requests[1]
    assert cap.requests[1]["headers"]["Authorization"] == "Bearer tok-123"
    assert cap.requests[1]["path"].startswith(f"/emea/v3/conversations/{conversation}/activities")
    assert isinstance(results[1], ResourceResponse)
    assert results[0].serialize() == results[1].serialize() == {"id": "reply-1"}


async def test_errors_match_the_generated_operation(capture: tuple[_Capture, str]) -> None:
    cap, base_url = capture
    cap.answer = (403, {"error": {"code": "BotDisabledByAdmin", "message": "blocked"}})
    failures = []
    async with aiohttp.ClientSession() as session:
        stock, fast, fast_ops = await _clients(session, base_url)
        for client in (stock, fast):
            with pytest.raises(ErrorResponseException) as caught:
                await client.conversations.send_to_conversation("a:1", _activities()["card"])
            failures.append(caught.value)
    assert fast_ops.fast_sends == 1
    assert [f.response.status for f in failures] == [403, 403]
    assert failures[0].error.error.code == failures[1].error.error.code == "BotDisabledByAdmin"
    assert str(failures[0]) == str(failures[1])


def test_turn_copies_of_a_card_activity_share_the_card() -> None:
    card = {"type": "AdaptiveCard", "version": "1.5", "body": [{"type": "TextBlock", "text": "x"}]}
    activity = card_activity(card)
    copied = copy.deepcopy(activity)  # what TurnContext.send_activities does to every reply
    assert copied.attachments[0] is not activity.attachments[0]
    assert copied.attachments[0].content is card
    copied.attachments[0].content_type = "changed"
    assert activity.attachments[0].content_type == CARD_TYPE


@pytest.mark.parametrize("operation", ["send_to_conversation", "reply_to_activity", "update_activity"])
async def test_activities_only_msrest_can_write_are_sent_through_the_generated_operation(
    capture: tuple[_Capture, str], operation: str
) -> None:
    """The fallback path: the apology card of a failed turn carries a timestamp and takes it."""
    cap, base_url = capture
    stamped = _reply(card_activity(CARD))
    stamped.timestamp = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    async with aiohttp.ClientSession() as session:
        stock, fast, fast_ops = await _clients(session, base_url)
        results = []
        for client in (stock, fast):
            call = getattr(client.conversations, operation)
            args = (("a:1", stamped) if operation == "send_to_conversation" else ("a:1", "1700000000001", stamped))
            results.append(await call(*args))
    assert fast_ops.fast_sends == 0
    assert len(cap.requests) == 2 and cap.requests[0]["body"] == cap.requests[1]["body"]
    assert results[0].serialize() == results[1].serialize() == {"id": "reply-1"}


def _invoke_bodies() -> dict[str, Any]:
    from botbuilder.schema import AdaptiveCardInvokeResponse

    from bot.teams.bot import MESSAGE_CONTENT_TYPE, _MessageInvokeResponse

    return {
        "card": AdaptiveCardInvokeResponse(status_code=200, type="application/vnd.microsoft.card.adaptive", value=CARD),
        "message": _MessageInvokeResponse(status_code=200, type=MESSAGE_CONTENT_TYPE, value="sent privately"),
        "bad invoke": AdaptiveCardInvokeResponse(status_code=400, type="application/vnd.microsoft.error",
                                                 value=Exception("BadRequest", "Missing value")),
        "card with a datetime": AdaptiveCardInvokeResponse(
            status_code=200, type="application/vnd.microsoft.card.adaptive",
            value={"type": "AdaptiveCard", "at": datetime(2026, 1, 1, tzinfo=UTC)}),
        "card with nulls": AdaptiveCardInvokeResponse(
            status_code=200, type="application/vnd.microsoft.card.adaptive",
            value={"type": "AdaptiveCard", "body": [None, {"a": None, "b": [1, 2.5, False]}], "x": None}),
        "value a list": AdaptiveCardInvokeResponse(status_code=200, type="t", value=[CARD]),
        "nothing": None,
    }  # fmt: skip


@pytest.mark.parametrize("name", sorted(_invoke_bodies()))
def test_invoke_responses_are_what_botbuilder_builds(name: str) -> None:
    from botbuilder.core import ActivityHandler

    from bot.teams.bot import TeamsBot
    from bot.teams.outbound import SharedInvokeResponse

    def build(create: Any) -> Any:
        try:
            return create(_invoke_bodies()[name])
        except Exception as exc:
            return type(exc)

    stock, ours = build(ActivityHandler._create_invoke_response), build(TeamsBot._create_invoke_response)
    if isinstance(stock, type):
        assert ours is stock
        return
    assert isinstance(ours, SharedInvokeResponse)
    assert (ours.status, ours.body) == (stock.status, stock.body)


def test_plain_invoke_answers_do_not_take_msrest_path(monkeypatch: pytest.MonkeyPatch) -> None:
    from bot.teams import outbound

    def refuse(body: Any) -> Any:
        raise AssertionError("msrest's serializer was used")

    monkeypatch.setattr(outbound, "serializer_helper", refuse)
    for name in ("card", "message", "card with nulls", "nothing"):
        outbound.invoke_response(_invoke_bodies()[name])


def test_turn_copies_of_an_invoke_response_share_the_body() -> None:
    from botbuilder.schema import ActivityTypes, AdaptiveCardInvokeResponse

    from bot.teams.outbound import invoke_response

    response = invoke_response(AdaptiveCardInvokeResponse(status_code=200, type="t", value=CARD))
    # what ActivityHandler.on_turn sends and TurnContext.send_activities deep-copies
    sent = copy.deepcopy(Activity(value=response, type=ActivityTypes.invoke_response))
    assert sent.value is not response and sent.value.body is response.body
    assert (sent.value.status, sent.value.body) == (200, {"statusCode": 200, "type": "t", "value": CARD})


@pytest.mark.parametrize("case", ["channel", "personal with properties", "no tenant in the conversation"])
def test_a_stored_reference_is_what_msrest_writes(case: str) -> None:
    from bot.teams.proactive import reference_of

    body = copy.deepcopy(INBOUND)
    if case == "personal with properties":
        body["conversation"] = {"id": "a:1", "conversationType": "personal", "tenantId": "tenant-1"}
        body["from"]["properties"] = {"x": [1, {"y": None}]}
        body["recipient"]["role"] = "bot"
    elif case == "no tenant in the conversation":
        del body["conversation"]["tenantId"]
    activity = Activity().deserialize(body)
    expected = TurnContext.get_conversation_reference(activity).serialize()
    expected.setdefault("conversation", {})["tenantId"] = "tenant-1"
    assert reference_of(activity) == expected
