"""Repeated agendas are answered inside the acknowledgement, and never with stale or someone else's data."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event, select

from bot.commands import actions
from bot.slack.server import _command_fields
from sync.runtime.core import Core
from sync.runtime.settings import Settings
from sync.store.database import Store
from sync.store.model import Appointment
from tests.bot.clinic import make_actor
from tests.bot.slack.conftest import SlackClient, serve_slack, signed_headers
from tests.fakes.slack import FakeSlack, check_blocks


@pytest.fixture
async def slack(core: Core, settings: Settings, fake_slack: FakeSlack) -> AsyncIterator[SlackClient]:
    """The server without its reminder scheduler: the scheduler's commits (another SQLite
    connection) invalidate kept answers, and its queries fall inside the windows these tests watch."""
    async with serve_slack(core, settings, fake_slack, scheduler_enabled=False) as client:
        # A still clock for the actor cache: on a loaded machine more than half an entry's life may
        # pass between two requests, and its refresh in the background (a lookup) must not fall
        # inside a window that counts statements. Tests of expiry set their own clock.
        client.runtime.listeners.actors.clock = lambda: 1000.0
        yield client


async def _ask(slack: SlackClient, text: str = "today", user: str = "US", rid: str | None = None) -> tuple[int, Any]:
    """Post a command; (status, the ack body as JSON or None when the ack is empty)."""
    body = slack.command_body(text, user, rid)
    async with slack.session.post(slack.url + "/slack/events", data=body, headers=signed_headers(body)) as resp:
        raw = await resp.text()
        return resp.status, (json.loads(raw) if raw.startswith("{") else None)


#: What answering an agenda reads; other work of the server (the reminder scheduler) may run meanwhile.
_AGENDA_READS = re.compile(r"\bFROM (appointment|chat_identity|role|practice|practitioner)\b")


@contextmanager
def _statements(store: Store) -> Iterator[list[str]]:
    """The SQL statements reading what agendas are built from, run by the store inside the block."""
    seen: list[str] = []

    def note(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if _AGENDA_READS.search(statement):
            seen.append(statement)

    event.listen(store.engine.sync_engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        event.remove(store.engine.sync_engine, "before_cursor_execute", note)


async def test_a_repeat_is_answered_in_the_ack_without_the_database(slack: SlackClient) -> None:
    status, ack = await _ask(slack, rid="first")
    assert status == 200 and ack is None  # a first contact: ack now, answer at the response_url
    await slack.settle()
    [posted] = slack.fake.responses["first"]
    with _statements(slack.core.store) as statements:
        status, ack = await _ask(slack, rid="second")
    assert status == 200 and ack is not None
    assert statements == []
    assert ack["response_type"] == "ephemeral" and ack["blocks"] == posted["blocks"] and ack["text"] == posted["text"]
    check_blocks(ack["blocks"])
    assert f"A-{slack.clinic.a_lee_10}" in json.dumps(ack) and "clinic.reschedule" in json.dumps(ack)
    await slack.settle()
    assert slack.fake.responses["second"] == []  # answered once, in the ack


async def test_a_change_made_here_shows_in_the_very_next_answer(slack: SlackClient) -> None:
    await _ask(slack)
    await slack.settle()
    _, before = await _ask(slack)
    assert before is not None and "Jane Roe" in json.dumps(before)
    async with slack.core.store.session() as s:
        appt = await s.get(Appointment, slack.clinic.a_lee_10)
        assert appt is not None
        appt.client_name = "Renamed Person"
    _, after = await _ask(slack)
    assert after is not None
    assert "Renamed Person" in json.dumps(after) and "Jane Roe" not in json.dumps(after)


async def test_a_cancel_from_a_button_shows_in_the_next_agenda(slack: SlackClient) -> None:
    await _ask(slack)
    await slack.settle()
    appt = slack.clinic.a_lee_11
    _, before = await _ask(slack)
    assert before is not None
    assert _cancellable(before) == {slack.clinic.a_lee_10, appt, slack.clinic.a_kim_10}
    value = actions.encode(actions.CancelConfirmed(appt, 1, ""))[1]
    await slack.interact(slack.action_payload("clinic.cancel_confirm", value, rid="m"))
    await slack.settle()
    assert "Cancelled" in json.dumps(slack.fake.responses["m"])
    _, after = await _ask(slack)
    assert after is not None and _cancellable(after) == {slack.clinic.a_lee_10, slack.clinic.a_kim_10}


def _cancellable(answer: dict[str, Any]) -> set[int]:
    """Appointment ids with a Cancel button in an agenda message."""
    return {
        json.loads(e["value"])["a"]
        for b in answer["blocks"]
        if b["type"] == "actions"
        for e in b["elements"]
        if e["action_id"] == "clinic.cancel"
    }


async def test_each_person_gets_their_own_answer(slack: SlackClient) -> None:
    c = slack.clinic
    await make_actor(slack.core, "UKIM", ("practitioner",), practitioner_id=c.kim)
    await make_actor(slack.core, "UDESK", ("staff",))
    for user in ("UKIM", "UDESK"):  # first contact of each: answered at the response_url, then kept
        await _ask(slack, user=user)
    await slack.settle()
    _, kim = await _ask(slack, user="UKIM")
    _, desk = await _ask(slack, user="UDESK")
    assert kim is not None and desk is not None
    assert "Ann Other" in json.dumps(kim) and "Jane Roe" not in json.dumps(kim)
    assert "Ann Other" in json.dumps(desk) and "Jane Roe" in json.dumps(desk)


async def test_a_role_revoked_through_the_bot_applies_at_once(slack: SlackClient) -> None:
    await make_actor(slack.core, "UDESK", ("staff",))
    await _ask(slack, user="UDESK")
    await slack.settle()
    _, cached = await _ask(slack, user="UDESK")
    assert cached is not None and "blocks" in cached
    # US is the practice's first contact, so its admin.
    await _ask(slack, "role revoke staff <@UDESK>")
    await slack.settle()
    status, ack = await _ask(slack, user="UDESK", rid="after")
    assert status == 200 and (ack is None or "Jane Roe" not in json.dumps(ack))
    await slack.settle()
    [answer] = slack.fake.responses["after"]
    assert "Jane Roe" not in json.dumps(answer)


async def test_changes_made_elsewhere_show_within_the_ttl(slack: SlackClient, settings: Any, backend: str) -> None:
    listeners = slack.runtime.listeners
    now = [1000.0]
    listeners.answers.clock = lambda: now[0]
    await _ask(slack)
    await slack.settle()
    other = Store(settings.database_url, settings.database_schema)  # another process, in effect
    try:
        async with other.session() as s:
            appt = await s.get(Appointment, slack.clinic.a_lee_10)
            assert appt is not None
            appt.client_name = "Changed Elsewhere"
    finally:
        await other.dispose()
    _, stale = await _ask(slack)
    assert stale is not None and "Jane Roe" in json.dumps(stale)  # not looked yet: this process cannot know
    # SQLite tells within watch_every that someone committed; PostgreSQL only the TTL bounds it.
    now[0] += listeners.answers.watch_every + 0.01 if backend == "sqlite" else listeners.answers.ttl + 0.1
    _, fresh = await _ask(slack)
    assert fresh is not None and "Changed Elsewhere" in json.dumps(fresh)


async def test_an_error_is_not_kept(slack: SlackClient) -> None:
    await make_actor(slack.core, "UNOBODY", ())
    await _ask(slack, user="UNOBODY", rid="e1")
    await slack.settle()
    assert "role" in json.dumps(slack.fake.responses["e1"][0]).lower()
    answers = slack.runtime.listeners.answers
    hits = answers.hits
    _, ack = await _ask(slack, user="UNOBODY", rid="e2")
    assert answers.hits == hits  # built again, not served from the cache
    assert ack is not None and "role" in json.dumps(ack).lower() and "Jane Roe" not in json.dumps(ack)


async def test_other_commands_are_not_answered_from_the_cache(slack: SlackClient) -> None:
    await _ask(slack)
    await slack.settle()
    status, ack = await _ask(slack, f"appointment A-{slack.clinic.a_lee_10}", rid="d")
    assert status == 200 and ack is None
    await slack.settle()
    assert "Jane Roe" in json.dumps(slack.fake.responses["d"])
    async with slack.core.store.session() as s:
        assert (await s.scalar(select(Appointment.status).where(Appointment.id == slack.clinic.a_lee_10))) == "confirmed"


def test_command_fields_decodes_only_what_it_needs() -> None:
    form = "token=x&team_id=T1&user_id=U1&user_name=a+b&command=%2Fclinic&text=today+%3C%40U2%7Cx%3E&response_url=http%3A%2F%2Fx"
    assert _command_fields(form) == {
        "team_id": "T1",
        "user_id": "U1",
        "user_name": "a b",
        "command": "/clinic",
        "text": "today <@U2|x>",
    }
    assert _command_fields("") == {}
    # only whole field names count, an empty value is a value, and the last of a repeated field wins
    assert _command_fields("context=x&team_idx=T9&text=&user_id=U1&user_id=U2") == {"text": "", "user_id": "U2"}


async def test_a_known_person_whose_entry_expired_is_looked_up_again_inline(slack: SlackClient) -> None:
    listeners = slack.runtime.listeners
    now = [1000.0]
    listeners.actors.clock = lambda: now[0]
    await _ask(slack)
    await slack.settle()
    now[0] += listeners.actors.ttl + 1  # the person's entry is stale; roles may have changed elsewhere
    with _statements(slack.core.store) as statements:
        status, ack = await _ask(slack, rid="again")
    assert status == 200 and ack is not None and "Jane Roe" in json.dumps(ack)
    assert any("chat_identity" in s for s in statements)  # asked the database who this is
    await slack.settle()
    assert slack.fake.responses["again"] == []


async def test_the_answer_path_after_the_ack_reuses_a_kept_agenda(slack: SlackClient) -> None:
    """A command answered at its response_url (here: the person is not in the actor cache) still
    takes a kept agenda: only who is asking is looked up, the day is not read or rendered again."""
    # A controlled clock: on a loaded machine more than `watch_every` may pass between the two
    # requests, and the kept agenda's freshness must not depend on that.
    slack.runtime.listeners.answers.clock = lambda: 1000.0
    await _ask(slack, rid="first")
    await slack.settle()
    [first] = slack.fake.responses["first"]
    slack.runtime.listeners.actors.forget_all()
    with _statements(slack.core.store) as statements:
        status, ack = await _ask(slack, rid="later")
        await slack.settle()
    assert status == 200 and ack is None  # not known: acked at once, answered after
    [later] = slack.fake.responses["later"]
    assert later["blocks"] == first["blocks"]
    assert statements and not any("FROM appointment" in s for s in statements)


async def test_staff_share_one_kept_agenda_and_a_practitioner_never_gets_it(slack: SlackClient) -> None:
    """Answers are kept per audience (bot.commands.answers.agenda_audience): a second member of staff
    gets the agenda the first one's request built, with no database work; a practitioner, who sees
    only their own appointments, gets their own."""
    c = slack.clinic
    await make_actor(slack.core, "UDESK", ("staff",))
    await make_actor(slack.core, "UKIM", ("practitioner",), practitioner_id=c.kim)
    for user in ("UDESK", "UKIM"):  # known to this server (a first contact takes bolt's path)
        await slack.runtime.listeners.actors.resolve(slack.team, user, user.lower())
    await _ask(slack, rid="first")  # US, the practice's admin
    await slack.settle()
    [built] = slack.fake.responses["first"]
    with _statements(slack.core.store) as statements:
        _, desk = await _ask(slack, user="UDESK")
    assert desk is not None and desk["blocks"] == built["blocks"] and statements == []
    _, kim = await _ask(slack, user="UKIM", rid="kim")
    await slack.settle()
    answer = kim if kim is not None else slack.fake.responses["kim"][0]
    assert "Ann Other" in json.dumps(answer) and "Jane Roe" not in json.dumps(answer)
