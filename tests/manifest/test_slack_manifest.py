"""The Slack manifest declares exactly the command, scopes, events and URLs the code uses."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from bot.commands import parse
from bot.slack.listeners import COMMAND
from bot.slack.server import BOT_SCOPES, EVENTS, EVENTS_PATH, FILE_EVENTS, REDIRECT_PATH

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = yaml.safe_load((ROOT / "manifest/slack/manifest.yaml").read_text())
#: Web API method the code calls -> bot scope it needs (None: no scope; api.slack.com/methods).
METHOD_SCOPES = {
    "chat_postMessage": "chat:write",
    "chat_update": "chat:write",
    "chat_postEphemeral": "chat:write",
    "conversations_open": "im:write",
    "views_open": None,
    "views_update": None,
    "auth_test": None,
    "files_info": "files:read",
}


def _api_calls() -> set[str]:
    """Every `client.<method>(` / `.api_call("<method>"` in the Slack front end's sources."""
    calls: set[str] = set()
    for path in (ROOT / "bot").rglob("*.py"):
        text = path.read_text()
        if "slack" not in str(path) and "AsyncWebClient" not in text:
            continue
        calls.update(re.findall(r"client\.(chat_\w+|conversations_\w+|views_\w+|users_\w+|auth_\w+|files_\w+)\(",
                                text))
    return calls


def test_command_and_urls_match_the_server() -> None:
    [cmd] = MANIFEST["features"]["slash_commands"]
    assert cmd["command"] == COMMAND
    assert cmd["should_escape"] is True
    assert urlsplit(cmd["url"]).path == EVENTS_PATH
    settings = MANIFEST["settings"]
    assert urlsplit(settings["interactivity"]["request_url"]).path == EVENTS_PATH
    assert urlsplit(settings["event_subscriptions"]["request_url"]).path == EVENTS_PATH
    assert [urlsplit(u).path for u in MANIFEST["oauth_config"]["redirect_urls"]] == [REDIRECT_PATH]


def test_usage_hint_examples_are_valid_commands() -> None:
    [cmd] = MANIFEST["features"]["slash_commands"]
    for example in cmd["usage_hint"].split("|"):
        parse(example.strip())


def test_scopes_are_exactly_what_the_code_needs() -> None:
    declared = set(MANIFEST["oauth_config"]["scopes"]["bot"])
    assert declared == set(BOT_SCOPES)
    calls = _api_calls()
    assert calls, "found no Web API calls: the scan is broken"
    unknown = calls - set(METHOD_SCOPES)
    assert not unknown, f"add these methods and their scopes to METHOD_SCOPES: {unknown}"
    needed = {METHOD_SCOPES[c] for c in calls} - {None}
    needed.add("commands")  # the slash command itself
    needed.add("im:history")  # message.im events: a schedule file sent to the bot in its DM
    assert needed == declared, f"code needs {needed}, manifest declares {declared}"


def test_events_match_the_listeners() -> None:
    assert set(MANIFEST["settings"]["event_subscriptions"]["bot_events"]) == set(EVENTS) | set(FILE_EVENTS)
