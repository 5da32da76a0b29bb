"""POST /api/messages: authenticate the activity, run the turn, write the invoke response.

Why not botbuilder-integration-aiohttp's `CloudAdapter.process`: in 4.17.x it answers every invoke
that has a body with HTTP 500. `ActivityHandler` already serializes the body to a dict
(`_create_invoke_response` calls `serializer_helper`), and `process` calls `serializer_helper` on
it a second time, which fails with "'dict' object has no attribute 'is_xml_model'". So this
handler authenticates with the adapter's own BotFrameworkAuthentication, runs the turn through
the adapter's public `process_activity`, and serializes the body only if it is still a model.
It also keeps authentication failures apart from turn failures: a bad token is 401 (stock
botbuilder lets a forged or expired token surface as 500), and nothing runs.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import requests
from aiohttp import web
from botbuilder.core import ActivityHandler, InvokeResponse
from botbuilder.integration.aiohttp import CloudAdapter
from botbuilder.schema import ActivityTypes, AdaptiveCardInvokeResponse
from msrest.serialization import Model

from bot.keys import STATUS
from bot.shapes import Shape, shape_problem
from bot.teams.auth import TokenError
from bot.teams.inbound import ActivityReader
from bot.teams.signing_keys import SigningKeysUnavailable

__all__ = ["ACK_AFTER", "MessagesEndpoint", "activity_problem", "invoke_body"]

log = logging.getLogger("clinicbot.teams")

#: Teams gives up on a message request after 15 s: answer by then and let the turn finish after.
ACK_AFTER = 10.0
#: An invoke answered while the bot cannot sign in: Teams shows the message on the card.
NO_TOKEN_INVOKE_BODY = {
    "statusCode": 503,
    "type": "application/vnd.microsoft.error",
    "value": {"code": "ServiceUnavailable", "message": "clinicbot cannot reply right now; try again in a few minutes"},
}


def invoke_body(body: Any) -> Any:
    """JSON-ready invoke body: models are serialized, dicts/lists (already serialized) pass as they are."""
    if isinstance(body, AdaptiveCardInvokeResponse) and isinstance(body.value, Exception):
        # botbuilder's own "bad invoke" answer carries Exception(code, message) as its value.
        code, message = ([*list(body.value.args), "BadRequest", ""])[:2]
        return {
            "statusCode": body.status_code,
            "type": body.type,
            "value": {"code": code, "message": message},
        }
    if isinstance(body, Model):
        return body.serialize()
    if isinstance(body, list):
        return [invoke_body(b) for b in body]
    return body


class MessagesEndpoint:
    """The aiohttp handler for the Bot Framework messaging endpoint."""

    def __init__(self, adapter: CloudAdapter, bot: ActivityHandler, ack_after: float = ACK_AFTER) -> None:
        self.adapter = adapter
        self.bot = bot
        self.ack_after = ack_after
        self._background: set[asyncio.Task[Any]] = set()
        # msrest's Deserializer for Activity, built once, with the plain cases read from a plan
        # (bot.teams.inbound): the same bodies read the same way, without msrest's per-call work.
        self._activity_reader = ActivityReader()
        #: Why replies cannot be sent (no Bot Connector token), while that lasts; shown in /readyz.
        self.outbound_problem: str | None = None
        self._app: web.Application | None = None

    async def handle(self, request: web.Request) -> web.Response:
        """POST /api/messages."""
        if "application/json" not in request.headers.get("Content-Type", ""):
            return _problem(415, "expected an application/json Activity")
        try:
            body = await request.json()
        except (ValueError, RecursionError):  # RecursionError: "[[[[..." nested too deep
            return _problem(400, "the body is not JSON")
        if not isinstance(body, dict):
            return _problem(400, "the body must be an Activity object")
        if (shape := activity_problem(body)) is not None:
            return _problem(400, f"the body is not a valid Activity: {shape}")
        try:
            activity = self._activity_reader(body)
        except Exception:  # msrest raises DeserializationError and plain TypeErrors alike
            return _problem(400, "the body is not a valid Activity")
        if not activity.type or not activity.service_url or activity.conversation is None:
            return _problem(400, "an Activity needs type, serviceUrl and conversation")

        auth = self.adapter.bot_framework_authentication
        try:
            authenticated = await auth.authenticate_request(activity, request.headers.get("Authorization"))
        except (requests.RequestException, SigningKeysUnavailable) as exc:
            log.warning("cannot fetch Bot Framework signing keys", extra={"error": type(exc).__name__})
            return _problem(503, "cannot verify the token right now")
        except Exception as exc:  # every validation failure (PermissionError, jwt errors, unknown key)
            log.warning(
                "rejected an unauthenticated activity",
                extra={"reason": type(exc).__name__, "activity_type": activity.type},
            )
            return _problem(401, "unauthorized")

        self._app = request.app
        turn = asyncio.ensure_future(self.adapter.process_activity(authenticated, activity, self.bot.on_turn))
        try:
            if activity.type == ActivityTypes.invoke:
                response: InvokeResponse | None = await turn
            else:
                # Acknowledge first: a slow turn keeps running and answers through the connector.
                done, _ = await asyncio.wait({turn}, timeout=self.ack_after)
                if not done:
                    self._background.add(turn)
                    turn.add_done_callback(self._finished)
                    return web.Response(status=202)
                response = turn.result()
        except TokenError as exc:
            # Teams retries a 5xx, and the retry fails the same way: accept it, say so once.
            self._no_token(exc)
            if activity.type == ActivityTypes.invoke:
                return web.json_response(NO_TOKEN_INVOKE_BODY)
            return web.Response(status=202)
        self._token_ok()
        if response is None:
            return web.Response(status=201)
        if response.body is None:
            return web.Response(status=response.status or 200)
        return web.json_response(invoke_body(response.body), status=response.status or 200)

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._background.discard(task)
        if task.cancelled():
            return
        error = task.exception()
        if isinstance(error, TokenError):
            self._no_token(error)
        elif error is not None:
            log.error("background turn failed", exc_info=error)

    def _no_token(self, exc: TokenError) -> None:
        """Record that replies cannot be sent; log it when it starts or its reason changes, not per activity."""
        reason = str(exc)[:300]
        if reason != self.outbound_problem:
            log.error("cannot sign in to the Bot Connector: activities are accepted but not answered",
                      extra={"reason": reason})
        self.outbound_problem = reason
        self._show(f"enabled, but cannot sign in to the Bot Connector, so no replies are sent: {reason}")

    def _token_ok(self) -> None:
        if self.outbound_problem is not None:
            log.info("signed in to the Bot Connector again; replies are sent")
            self.outbound_problem = None
            self._show("enabled")

    def _show(self, state: str) -> None:
        if self._app is not None:
            self._app[STATUS]["teams"] = state

    async def drain(self) -> None:
        """Wait for turns still running after their acknowledgement (at shutdown)."""
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)


_NONE = type(None)
_STR, _OPT_STR, _OPT_OBJ = (str,), (str, _NONE), (dict, _NONE)
_ACCOUNT: Shape = {"id": (True, _STR, None), "name": (False, _OPT_STR, None), "aadObjectId": (False, _OPT_STR, None)}
_NAMED: Shape = {"id": (False, _OPT_STR, None), "name": (False, _OPT_STR, None)}
#: What botbuilder and the bot read from an Activity without checking (the gate runs first).
_ACTIVITY: Shape = {
    "type": (True, _STR, None),
    "id": (False, _OPT_STR, None),
    "serviceUrl": (True, _STR, None),
    "channelId": (False, _OPT_STR, None),
    "name": (False, _OPT_STR, None),
    "text": (False, _OPT_STR, None),
    "replyToId": (False, _OPT_STR, None),
    "from": (True, (dict,), _ACCOUNT),
    "recipient": (False, _OPT_OBJ, _ACCOUNT),
    "conversation": (True, (dict,), {"id": (True, _STR, None), "conversationType": (False, _OPT_STR, None),
                                     "tenantId": (False, _OPT_STR, None), "name": (False, _OPT_STR, None)}),
    "channelData": (False, _OPT_OBJ, {"tenant": (False, _OPT_OBJ, _NAMED), "team": (False, _OPT_OBJ, _NAMED),
                                      "channel": (False, _OPT_OBJ, _NAMED), "eventType": (False, _OPT_STR, None)}),
    "entities": (False, (list, _NONE), {"type": (True, _STR, None), "text": (False, _OPT_STR, None),
                                        "mentioned": (False, _OPT_OBJ, _ACCOUNT)}),
    "membersAdded": (False, (list, _NONE), _ACCOUNT),
    "membersRemoved": (False, (list, _NONE), _ACCOUNT),
}
_CARD_ACTION: Shape = {
    "action": (True, (dict,), {"type": (False, _OPT_STR, None), "verb": (False, _OPT_STR, None),
                               "data": (False, _OPT_OBJ, None)}),
    "trigger": (False, _OPT_STR, None),
}


def activity_problem(body: dict[str, Any]) -> str | None:
    """Why an Activity body has a shape the turn would fail on, or None (checked before anything runs).

    botbuilder and the bot index into `from`, `entities`, `channelData.tenant` and an invoke's
    `value.action` without checking: such an activity passed authentication, then failed the turn.
    """
    if (problem := shape_problem(body, _ACTIVITY)) is not None:
        return problem
    for entity in body.get("entities") or []:
        if entity["type"] == "mention" and not isinstance(entity.get("mentioned"), dict):
            return "a mention entity without mentioned"
    if body["type"] == "invoke" and not body.get("name"):
        return "an invoke without a name"
    if body["type"] == "invoke" and body.get("name") == "adaptiveCard/action":
        value = body.get("value")
        if not isinstance(value, dict):
            return "an adaptiveCard/action invoke without a value object"
        return shape_problem(value, _CARD_ACTION, "value.")
    return None


def _problem(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)
