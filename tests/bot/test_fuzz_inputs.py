"""Fuzzers over what the outside world sends: Slack payloads, Teams activities and webhook bodies.

A real server (SQLite, the Slack and Bot Connector fakes) runs in its own thread and loop, and
Hypothesis posts mutated versions of well-formed inputs to it over HTTP. Every example must get
an answer below 500, leave no ERROR line with a traceback, change nothing when it is refused, and
be answered within a bound (a hang guard, not a speed measurement).

CI runs a few dozen examples per fuzzer; `make fuzz` runs many more (CLINICBOT_FUZZ_EXAMPLES).
Fields that name where the server sends its answers (response_url, serviceUrl) are never
mutated: the fakes must stay the only place the server talks to.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from bot.app import build_app
from bot.slack.server import SLACK
from bot.slack.verify import sign
from sync.boot import open_core
from sync.runtime.core import Core
from sync.store.model import Appointment, AuditEntry, ChatIdentity, Role
from tests.bot.clinic import seed
from tests.bot.teams.conftest import APP_ID, APP_PASSWORD, activity, teams_settings
from tests.conftest import make_settings
from tests.fakes.bot_connector import FakeBotConnector
from tests.fakes.slack import BOT_TOKEN, FakeSlack

EXAMPLES = int(os.environ.get("CLINICBOT_FUZZ_EXAMPLES", "30"))
#: How long one input may take to be answered before it counts as a hang.
ANSWER_WITHIN = 20.0
SECRET = "fuzz-signing-secret"
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,  # no timing assertions: the hang guard is ANSWER_WITHIN
    database=None,  # nothing written into the working copy
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

DELETE = object()
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
ODD_TEXT = st.sampled_from(["today", "tomorrow", "help", "31 Dec 9999", "reschedule A-²", "cancel A-99999999999999",
                            "¹765000000", "[" * 2000, "", "\x00", "whoami", "status"]) | st.text(max_size=60)


class _Errors(logging.Handler):
    """Collects ERROR lines and lines with a traceback, from every logger."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR or record.exc_info:
            self.records.append(record)


class _Server:
    """The whole server on a loop in a thread, so synchronous Hypothesis tests can drive it."""

    def __init__(self, tmp: Path, connector: FakeBotConnector) -> None:
        self.tmp = tmp
        self.connector = connector
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="fuzz-server", daemon=True)
        self.url = ""
        self.core: Core | None = None
        self.fake_slack = FakeSlack()
        self._runner: Any = None

    def run(self, coro: Coroutine[Any, Any, Any], timeout: float = ANSWER_WITHIN) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start(self) -> _Server:
        self.thread.start()
        self.run(self._start(), 60)
        return self

    async def _start(self) -> None:
        from aiohttp import web

        from sync.store.migrate import upgrade

        await self.fake_slack.start()
        base = make_settings("sqlite", self.tmp)
        teams = teams_settings("sqlite", self.tmp, self.connector, scheduler_enabled=False)
        settings = teams.model_copy(update={
            "database_url": base.database_url, "slack_signing_secret": SECRET, "slack_bot_token": BOT_TOKEN,
            "slack_api_url": self.fake_slack.url + "/api",
        })
        self.core = open_core(settings)
        await upgrade(self.core.store)
        await seed(self.core)
        self.app = build_app(settings, core=self.core)
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]

    def stop(self) -> None:
        async def _stop() -> None:
            await self._runner.cleanup()
            await self.fake_slack.stop()

        self.run(_stop(), 60)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    def settle(self) -> None:
        """Let work queued after an acknowledgement finish."""
        self.run(self.app[SLACK].drain())

    def state(self) -> tuple[int, ...]:
        async def counts() -> tuple[int, ...]:
            assert self.core is not None
            async with self.core.store.session() as s:
                return (
                    int(await s.scalar(select(func.count()).select_from(ChatIdentity)) or 0),
                    int(await s.scalar(select(func.count()).select_from(Role)) or 0),
                    int(await s.scalar(select(func.count()).select_from(AuditEntry)) or 0),
                    int(await s.scalar(select(func.sum(Appointment.version))) or 0),
                )

        result: tuple[int, ...] = self.run(counts())
        return result


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Server]:
    with FakeBotConnector(app_id=APP_ID, app_password=APP_PASSWORD) as connector, pytest.MonkeyPatch.context() as env:
        env.setenv("REQUESTS_CA_BUNDLE", connector.ca_path)  # msal signs in at the fake over TLS
        running = _Server(tmp_path_factory.mktemp("fuzz"), connector).start()
        try:
            yield running
        finally:
            running.stop()


@pytest.fixture
def errors() -> Iterator[_Errors]:
    handler = _Errors()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a JSON document a mutation can hit."""
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for n, item in enumerate(value):
            found += _paths(item, (*prefix, n))
    return found


def _mutate(doc: Any, changes: list[tuple[tuple[Any, ...], Any]]) -> Any:
    out = json.loads(json.dumps(doc))
    for path, value in changes:
        node = out
        try:
            for key in path[:-1]:
                node = node[key]
            if value is DELETE:
                del node[path[-1]]
            else:
                node[path[-1]] = value
        except (KeyError, IndexError, TypeError):
            continue  # an earlier change removed or replaced the parent
    return out


def _mutations(template: Any, keep: Callable[[tuple[Any, ...]], bool]) -> st.SearchStrategy[Any]:
    paths = [p for p in _paths(template) if keep(p)]
    change = st.tuples(st.sampled_from(paths), st.one_of(JSON, st.just(DELETE)))
    return st.lists(change, min_size=1, max_size=3).map(lambda changes: _mutate(template, changes))


def _unknown_invoke(what: Any) -> bool:
    """An invoke named something the bot does not handle: botbuilder answers 501 Not Implemented,
    the Bot Framework's documented answer, which Teams shows as "not supported"."""
    return (isinstance(what, dict) and what.get("type") == "invoke" and isinstance(what.get("name"), str)
            and what["name"] != "adaptiveCard/action")


def _check(server: _Server, errors: _Errors, status: int, before: tuple[int, ...], what: Any) -> None:
    assert status < 500 or (status == 501 and _unknown_invoke(what)), what
    if status >= 400:
        assert server.state() == before, f"a refused input changed the database: {what!r}"
    logged = [f"{r.name}: {r.getMessage()}" for r in errors.records]
    errors.records.clear()
    assert logged == [], f"{what!r} logged {logged}"


# --- Slack ---------------------------------------------------------------------------------------
def _slack_post(server: _Server, body: bytes, stamp: str | None = None) -> int:
    stamp = stamp or str(int(time.time()))
    headers = {"Content-Type": b"application/x-www-form-urlencoded", "X-Slack-Request-Timestamp": stamp.encode(),
               "X-Slack-Signature": sign(SECRET, stamp, body).encode()}
    response = httpx.post(server.url + "/slack/events", content=body, headers=headers, timeout=ANSWER_WITHIN)
    server.settle()
    return response.status_code


def _block_actions(server: _Server) -> dict[str, Any]:
    return {
        "type": "block_actions",
        "team": {"id": "T1", "domain": "clinic"},
        "user": {"id": "US", "username": "us", "team_id": "T1"},
        "api_app_id": "A1",
        "trigger_id": "1.2.trigger",
        "response_url": server.fake_slack.response_url("fuzz"),
        "container": {"type": "message", "message_ts": "1.000001", "channel_id": "C1", "is_ephemeral": True},
        "channel": {"id": "C1", "name": "front-desk"},
        "state": {"values": {"b1": {"clinic.day": {"type": "datepicker", "selected_date": "2026-03-03"}}}},
        "actions": [{"type": "button", "action_id": "clinic.cancel", "block_id": "b1",
                     "value": '{"a":2,"v":1}', "action_ts": "1.2"}],
    }


def _submission(server: _Server) -> dict[str, Any]:
    meta = json.dumps({"action": {"a": 2, "v": 1}, "origin": {"r": server.fake_slack.response_url("fuzz")}})
    return {
        "type": "view_submission",
        "team": {"id": "T1"},
        "user": {"id": "US", "username": "us", "team_id": "T1"},
        "view": {"id": "V1", "type": "modal", "callback_id": "clinic.reschedule", "private_metadata": meta,
                 "state": {"values": {"date": {"value": {"type": "datepicker", "selected_date": "2026-03-04"}},
                                      "time": {"value": {"type": "timepicker", "selected_time": "10:00"}}}}},
    }


def _not_an_address(path: tuple[Any, ...]) -> bool:
    return "response_url" not in path and "private_metadata" not in path


@pytest.mark.parametrize("kind", ["block_actions", "view_submission"])
def test_slack_payloads_never_break_the_server(server: _Server, errors: _Errors, kind: str) -> None:
    template = _block_actions(server) if kind == "block_actions" else _submission(server)

    @FUZZ
    @given(payload=_mutations(template, _not_an_address))
    def check(payload: Any) -> None:
        before = server.state()
        status = _slack_post(server, urlencode({"payload": json.dumps(payload)}).encode())
        _check(server, errors, status, before, payload)

    check()


def test_slack_commands_and_raw_bodies_never_break_the_server(server: _Server, errors: _Errors) -> None:
    fields = st.fixed_dictionaries(
        {"command": st.sampled_from(["/clinic", "/other", ""]), "text": ODD_TEXT,
         "team_id": st.sampled_from(["T1", "T2", "", "²"]), "user_id": st.sampled_from(["US", "U9", "", "١"])},
        optional={"user_name": st.text(max_size=10), "channel_id": st.text(max_size=10)},
    )
    raw = st.binary(max_size=300) | st.sampled_from([b"payload=[1]", b"payload=true", b"payload=" + b"%5B" * 3000])

    @FUZZ
    @given(body=fields.map(lambda f: urlencode({**f, "response_url": server.fake_slack.response_url("fuzz")})
                           .encode()) | raw,
           stamp=st.none() | st.sampled_from(["¹765000000", "-1", "9" * 13]))
    def check(body: bytes, stamp: str | None) -> None:
        before = server.state()
        status = _slack_post(server, body, stamp)
        _check(server, errors, status, before, body)

    check()


# --- Teams ---------------------------------------------------------------------------------------
def _teams_post(server: _Server, doc: Any) -> int:
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {server.connector.channel_token()}"}
    body = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    response = httpx.post(server.url + "/api/messages", content=body, headers=headers, timeout=ANSWER_WITHIN)
    return response.status_code


def _teams_templates(server: _Server) -> dict[str, dict[str, Any]]:
    url = server.connector.service_url
    message = activity(url, text="<at>clinicbot</at> today", kind="channel",
                       entities=[{"type": "mention", "text": "<at>clinicbot</at>",
                                  "mentioned": {"id": f"28:{APP_ID}", "name": "clinicbot"}}])
    invoke = activity(url, type="invoke", name="adaptiveCard/action",
                      value={"action": {"type": "Action.Execute", "verb": "today", "data": {"day": "2026-03-03"}},
                             "trigger": "manual"})
    update = activity(url, type="conversationUpdate", kind="channel",
                      membersAdded=[{"id": f"28:{APP_ID}"}],
                      channelData={"tenant": {"id": "t"}, "team": {"id": "19:team", "name": "Clinic"},
                                   "eventType": "teamMemberAdded"})
    return {"message": message, "invoke": invoke, "conversationUpdate": update}


@pytest.mark.parametrize("kind", ["message", "invoke", "conversationUpdate"])
def test_teams_activities_never_break_the_server(server: _Server, errors: _Errors, kind: str) -> None:
    template = _teams_templates(server)[kind]

    @FUZZ
    @given(doc=_mutations(template, lambda path: path[0] != "serviceUrl"))
    def check(doc: Any) -> None:
        before = server.state()
        status = _teams_post(server, doc)
        _check(server, errors, status, before, doc)

    check()


def test_teams_text_and_raw_bodies_never_break_the_server(server: _Server, errors: _Errors) -> None:
    template = _teams_templates(server)["message"]

    @FUZZ
    @given(doc=ODD_TEXT.map(lambda text: {**template, "text": text}) | st.binary(max_size=200)
           | st.sampled_from([b"[" * 100_000, b"null", b"[]", b'"x"']))
    def check(doc: Any) -> None:
        before = server.state()
        status = _teams_post(server, doc)
        _check(server, errors, status, before, doc)

    check()


# --- webhooks ------------------------------------------------------------------------------------
def test_webhook_bodies_and_paths_never_break_the_server(server: _Server, errors: _Errors) -> None:
    note = {"value": [{"subscriptionId": "sub-1", "changeType": "updated", "clientState": "s",
                       "resource": "Users/u/Events/e"}]}
    bodies = (
        _mutations(note, lambda path: True).map(lambda d: json.dumps(d).encode())
        | JSON.map(lambda d: json.dumps(d).encode())
        | st.binary(max_size=300)
        | st.sampled_from([b"[" * 100_000, b"{" * 5000])
    )
    ids = st.sampled_from(["1", "²", "1" * 23, "9" * 500, "0", "-1", "١"]) | st.text(
        alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12
    )

    @FUZZ
    @given(provider=st.sampled_from(["graph", "google", "other"]), path_id=ids, body=bodies,
           token=st.none() | st.text(max_size=30),
           goog=st.dictionaries(st.sampled_from(["X-Goog-Channel-ID", "X-Goog-Channel-Token",
                                                 "X-Goog-Resource-State", "X-Goog-Message-Number"]),
                                st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), max_size=20)))
    def check(provider: str, path_id: str, body: bytes, token: str | None, goog: dict[str, str]) -> None:
        before = server.state()
        params = {"validationToken": token} if token is not None else None
        response = httpx.post(f"{server.url}/webhooks/{provider}/{quote(path_id, safe='')}", content=body,
                              params=params,
                              headers={"Content-Type": "application/json", **goog}, timeout=ANSWER_WITHIN)
        _check(server, errors, response.status_code, before, (provider, path_id, body[:80]))

    check()
