"""The endpoint's Activity reader builds exactly what msrest's Deserializer builds, refuses what it
refuses, and hands msrest every value it does not read itself."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from botbuilder.schema import Activity
from msrest.exceptions import DeserializationError
from msrest.serialization import Deserializer, Model

from bot.teams.inbound import ActivityReader

BASE: dict[str, Any] = {
    "type": "message",
    "id": "1700000000001",
    "timestamp": "2026-12-07T09:00:00.123Z",
    "localTimestamp": "2026-12-07T10:00:00.123+01:00",
    "localTimezone": "Europe/Paris",
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
    "channelData": {"tenant": {"id": "tenant-1"}, "team": {"id": "19:team"}, "eventType": None},
    "locale": "en-GB",
    "text": "<at>clinicbot</at> today",
    "entities": [
        {"type": "mention", "text": "<at>clinicbot</at>", "mentioned": {"id": "28:bot", "name": "clinicbot"}},
        {"type": "clientInfo", "locale": "en-GB", "country": "GB", "platform": "Web", "timezone": "Europe/London"},
    ],
    "attachments": [{"contentType": "text/html", "content": "<div>today</div>"}],
}


def _invoke() -> dict[str, Any]:
    body = copy.deepcopy(BASE)
    body.update(
        type="invoke",
        name="adaptiveCard/action",
        replyToId="card-1",
        value={
            "action": {"type": "Action.Execute", "verb": "details", "data": {"id": "12", "n": [1, 2.5, True]}},
            "trigger": "manual",
        },
    )
    del body["text"]
    return body


def _case(name: str) -> Any:
    body = copy.deepcopy(BASE)
    if name == "message":
        return body
    if name == "invoke":
        return _invoke()
    if name == "minimal":
        return {"type": "message", "serviceUrl": "http://x", "conversation": {"id": "a"}, "from": {"id": "u"}}
    if name == "unknown top-level keys":  # Activity has no additional_properties bag: msrest drops them
        body["somethingNew"] = {"a": 1}
    elif name == "unknown nested keys":  # ChannelAccount keeps them as additional_properties
        body["from"]["userRole"] = "user"
        body["conversation"]["x-extra"] = [1, {"b": None}]
    elif name == "number where a string is declared":
        body["text"] = 42
        body["from"]["name"] = 3.5
    elif name == "bool as string":
        body["historyDisclosed"] = "true"
        body["conversation"]["isGroup"] = 1
    elif name == "nulls":
        body.update(text=None, entities=None, channelData=None, attachments=[None])
        body["from"]["name"] = None
    elif name == "empty lists and objects":
        body.update(entities=[], attachments=[], membersAdded=[], channelData={})
    elif name == "members and reactions":
        body.update(
            type="conversationUpdate",
            membersAdded=[{"id": "28:bot"}, {"id": "29:ann", "name": "Ann"}],
            membersRemoved=[{"id": "29:bob"}],
            reactionsAdded=[{"type": "like"}],
        )
    elif name == "suggested actions":
        body["suggestedActions"] = {"to": ["29:ann"], "actions": [{"type": "imBack", "title": "Yes", "value": "yes"}]}
    elif name == "relates to":
        body["relatesTo"] = {
            "activityId": "1",
            "conversation": {"id": "c"},
            "serviceUrl": "http://x",
            "channelId": "msteams",
            "bot": {"id": "28:bot"},
            "user": {"id": "29:ann"},
        }
    elif name == "text highlights":
        body["textHighlights"] = [{"text": "today", "occurrence": 1}]
    elif name == "odd timestamps":
        body["timestamp"] = "2026-12-07T09:00:00Z"
        body["expiration"] = "2026-12-08T09:00:00.1234567+00:00"
    # bodies msrest refuses or reads its own way: the reader must do the same
    elif name == "model a string":
        body["from"] = "29:ann"
    elif name == "model a list":
        body["conversation"] = [{"id": "a"}]
    elif name == "list an object":
        body["entities"] = {"type": "mention"}
    elif name == "list of strings":
        body["listenFor"] = ["today", 5]
    elif name == "list item a string":
        body["membersAdded"] = ["29:ann"]
    elif name == "bad timestamp":
        body["timestamp"] = "yesterday"
    elif name == "bad bool":
        body["historyDisclosed"] = "maybe"
    elif name == "not an object":
        return ["message"]
    else:
        raise AssertionError(name)
    return body


CASES = [
    "message", "invoke", "minimal", "unknown top-level keys", "unknown nested keys", "number where a string is declared",
    "bool as string", "nulls", "empty lists and objects", "members and reactions", "suggested actions", "relates to",
    "text highlights", "odd timestamps", "model a string", "model a list", "list an object", "list of strings",
    "list item a string", "bad timestamp", "bad bool", "not an object",
]  # fmt: skip


def _read(reader: Any, body: Any) -> tuple[str, Any]:
    try:
        return "ok", reader(body)
    except Exception as exc:
        return "error", (type(exc), str(exc))


def _tree(value: Any) -> Any:
    """A model tree as plain data with its classes (Model.__eq__ alone ignores a subclass)."""
    if isinstance(value, Model):
        return (type(value).__name__, {k: _tree(v) for k, v in vars(value).items()})
    if isinstance(value, list):
        return [_tree(v) for v in value]
    if isinstance(value, dict):
        return {k: _tree(v) for k, v in value.items()}
    return (type(value).__name__, value)


@pytest.mark.parametrize("name", CASES)
def test_the_reader_builds_what_msrest_builds(name: str) -> None:
    msrest = Deserializer(Activity._infer_class_models())
    body = _case(name)
    untouched = copy.deepcopy(body)
    expected = _read(lambda b: msrest("Activity", b), copy.deepcopy(body))
    got = _read(ActivityReader(), body)
    assert body == untouched  # the body itself is not changed
    assert got[0] == expected[0]
    if expected[0] == "ok":
        assert _tree(got[1]) == _tree(expected[1])
    else:
        assert got[1][0] is expected[1][0] is DeserializationError or got[1] == expected[1]


def test_the_plain_cases_do_not_take_msrest_path() -> None:
    reader = ActivityReader()
    for name in ("message", "invoke", "minimal", "unknown nested keys", "members and reactions"):
        reader(_case(name))
    assert reader.fallbacks == 0
    with pytest.raises(DeserializationError):
        reader(_case("model a list"))
    assert reader.fallbacks == 1


def test_values_the_reader_shares_are_not_the_bodys_objects() -> None:
    """msrest copies `object` values (channelData, value): a change to the model leaves the body alone."""
    body = _invoke()
    activity = ActivityReader()(body)
    activity.value["action"]["data"]["id"] = "13"
    activity.channel_data["tenant"]["id"] = "other"
    assert body["value"]["action"]["data"]["id"] == "12"
    assert body["channelData"]["tenant"]["id"] == "tenant-1"
