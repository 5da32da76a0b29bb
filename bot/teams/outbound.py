"""Replies to the Bot Connector without msrest's per-call overhead.

Every turn ends in `send_to_conversation` or `reply_to_activity`. The generated msrest operation
spends most of a turn's CPU there: `Serializer.body` round-trips the Activity through a
Deserializer, validates it and re-serializes the card (already plain JSON) value by value, then
the request crosses the pipeline's policy runners. `FastConversations` builds the same JSON
directly from the models' attribute maps and posts it through the shared sender (same URL,
headers, retries, errors and result as the generated code). Anything it does not handle exactly
takes the generated code path: a value that is not plain JSON or a model, custom headers, raw
responses, HTTP logging, credentials other than ours.
"""

from __future__ import annotations

import copy
import json
from enum import Enum
from http import HTTPStatus
from typing import Any
from urllib.parse import quote

from botbuilder.core import InvokeResponse
from botbuilder.core.serializer_helper import serializer_helper
from botbuilder.schema import Activity, ResourceResponse
from botframework.connector.aio.operations_async import ConversationsOperations
from botframework.connector.models import ErrorResponseException
from msrest.pipeline import Request, SansIOHTTPPolicy
from msrest.pipeline.universal import RawDeserializer
from msrest.serialization import Model
from msrest.universal_http import ClientRequest

from bot.teams.transport import SharedSessionSender

__all__ = ["FastConversations", "SharedInvokeResponse", "activity_json", "invoke_response", "model_json"]

_PLAIN_SCALAR_SET = frozenset((str, int, float, bool, type(None)))
_SCALAR_TYPES = {"str": str, "bool": bool, "int": int, "float": float}
_HEADERS = {"Accept": "application/json", "Content-Type": "application/json; charset=utf-8"}


class _NotPlain(Exception):
    """A value msrest would transform (enum, datetime, dict in place of a model ...)."""


def _plain(value: Any) -> bool:
    """JSON made only of dict/list/str/int/float/bool/None, exactly: msrest copies it unchanged.

    Plain loops, not all() over generators: a card has hundreds of values, checked on every reply."""
    kind = type(value)
    if kind is dict:
        for k in value:
            if type(k) is not str:
                return False
        values: Any = value.values()
    elif kind is list:
        values = value
    else:
        return kind in _PLAIN_SCALAR_SET
    for v in values:
        inner = type(v)
        if inner is dict or inner is list:
            if not _plain(v):
                return False
        elif inner not in _PLAIN_SCALAR_SET:
            return False
    return True


def _value(value: Any, declared: str) -> Any:
    scalar = _SCALAR_TYPES.get(declared)
    if scalar is not None:
        if type(value) is scalar:
            return value
        if declared == "str" and isinstance(value, Enum):
            return value.value  # as msrest's serialize_unicode: ActivityTypes.message -> "message"
        raise _NotPlain(declared)
    if declared == "object":
        if _plain(value):
            return value
        raise _NotPlain(declared)
    if declared == "{object}":  # as msrest's serialize_dict: each value written as an "object", None kept
        if type(value) is dict and _plain(value):
            return value
        raise _NotPlain(declared)
    if declared.startswith("[") and declared.endswith("]"):
        if type(value) is list:
            inner = declared[1:-1]
            return [None if v is None else _value(v, inner) for v in value]
        raise _NotPlain(declared)
    if isinstance(value, Model) and not declared.startswith("{"):
        return _model(value)
    raise _NotPlain(declared)


def _model(model: Model) -> dict[str, Any]:
    out: dict[str, Any] = {}
    validation = model._validation
    for attr, desc in model._attribute_map.items():
        key = desc["key"]
        if "." in key or not key or (validation and validation.get(attr, {})):
            raise _NotPlain(attr)  # flattened keys, additional properties, constraints
        value = getattr(model, attr)
        if value is not None:
            out[key] = _value(value, desc["type"])
    return out


def activity_json(activity: Activity) -> dict[str, Any] | None:
    """The Activity as msrest's `Serializer.body(activity, "Activity")` writes it, or None when
    it holds something only msrest knows how to write."""
    try:
        return _model(activity)
    except _NotPlain:
        return None


def model_json(model: Model) -> dict[str, Any]:
    """The model as its `serialize()` writes it; plain values are built directly (values typed
    `object` are the model's own, not copies), anything else is left to msrest."""
    try:
        return _model(model)
    except _NotPlain:
        return model.serialize()  # type: ignore[no-any-return]


class SharedInvokeResponse(InvokeResponse):  # type: ignore[misc]
    """An invoke response whose deep copy shares its body.

    botbuilder sends the turn's invoke response through TurnContext.send_activity, which deep-copies
    it, body (the whole card) included. The body is JSON built for this response and never changed
    afterwards, so copying it is pure cost (as for bot.teams.proactive.CardAttachment)."""

    def __deepcopy__(self, memo: dict[int, Any]) -> SharedInvokeResponse:
        return copy.copy(self)


def invoke_response(body: Any = None) -> InvokeResponse:
    """What `ActivityHandler._create_invoke_response(body)` returns (status 200, the body as
    botbuilder's `serializer_helper` writes it), without msrest's per-value work for a plain body."""
    if body is None:
        return SharedInvokeResponse(status=int(HTTPStatus.OK), body=None)
    serialized = None
    if isinstance(body, Model) and not body.is_xml_model():
        try:
            serialized = _model(body)
        except _NotPlain:
            serialized = None
    if serialized is None:
        serialized = serializer_helper(body)
    return SharedInvokeResponse(status=int(HTTPStatus.OK), body=serialized)


class FastConversations(ConversationsOperations):  # type: ignore[misc]
    """The connector client's conversation operations, with the per-turn ones made cheap."""

    def __init__(
        self, operations: ConversationsOperations, sender: SharedSessionSender, credentials: SansIOHTTPPolicy[Any, Any]
    ) -> None:
        super().__init__(operations._client, operations.config, operations._serialize, operations._deserialize)
        self._sender = sender
        self._credentials = credentials
        self.fast_sends = 0

    async def send_to_conversation(self, conversation_id: Any, activity: Any, **kwargs: Any) -> Any:
        if kwargs or not isinstance(conversation_id, str):
            return await super().send_to_conversation(conversation_id, activity, **kwargs)
        path = ConversationsOperations.send_to_conversation.metadata["url"]
        sent = await self._send("POST", path, conversation_id, None, activity)
        if sent is _FALLBACK:
            return await super().send_to_conversation(conversation_id, activity)
        return sent

    async def reply_to_activity(self, conversation_id: Any, activity_id: Any, activity: Any, **kwargs: Any) -> Any:
        if kwargs or not isinstance(conversation_id, str) or not isinstance(activity_id, str):
            return await super().reply_to_activity(conversation_id, activity_id, activity, **kwargs)
        path = ConversationsOperations.reply_to_activity.metadata["url"]
        # Of the three, only the generated reply_to_activity sends x-ms-conversation-id.
        sent = await self._send("POST", path, conversation_id, activity_id, activity, conversation_header=True)
        if sent is _FALLBACK:
            return await super().reply_to_activity(conversation_id, activity_id, activity)
        return sent

    async def update_activity(self, conversation_id: Any, activity_id: Any, activity: Any, **kwargs: Any) -> Any:
        if kwargs or not isinstance(conversation_id, str) or not isinstance(activity_id, str):
            return await super().update_activity(conversation_id, activity_id, activity, **kwargs)
        path = ConversationsOperations.update_activity.metadata["url"]
        sent = await self._send("PUT", path, conversation_id, activity_id, activity)
        if sent is _FALLBACK:
            return await super().update_activity(conversation_id, activity_id, activity)
        return sent

    async def _send(
        self,
        method: str,
        path: str,
        conversation_id: str,
        activity_id: str | None,
        activity: Any,
        *,
        conversation_header: bool = False,
    ) -> Any:
        config = self._client.config
        if not isinstance(activity, Activity) or config.enable_http_logger:
            return _FALLBACK
        body = activity_json(activity)
        if body is None:
            return _FALLBACK
        ids = {"conversationId": quote(conversation_id, safe="")}
        if activity_id is not None:
            ids["activityId"] = quote(activity_id, safe="")
        http = ClientRequest(method, self._client.format_url(path, **ids))
        http.headers.update(_HEADERS)
        if conversation_header:
            http.headers["x-ms-conversation-id"] = conversation_id
        http.data = json.dumps(body)
        # The pipeline's request policies, in its order: user agent, then our bearer token.
        request = Request(http)
        config.user_agent_policy.on_request(request)
        self._credentials.on_request(request)
        response = await self._sender.exchange(http)
        self.fast_sends += 1
        if response.status_code not in (200, 201, 202):
            raise ErrorResponseException(self._deserialize, response)
        data = RawDeserializer.deserialize_from_http_generics(response.text(), response.headers)
        result: ResourceResponse | None = self._deserialize("ResourceResponse", data)
        return result


_FALLBACK: Any = object()

# The generated operations read their URL template from `self.<operation>.metadata`, which now
# finds these overrides: without the same metadata every fallback to super() raised AttributeError.
for _name in ("send_to_conversation", "reply_to_activity", "update_activity"):
    getattr(FastConversations, _name).metadata = getattr(ConversationsOperations, _name).metadata
