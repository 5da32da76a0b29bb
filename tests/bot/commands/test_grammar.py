"""The one grammar: every command parses to its typed form; bad input names the problem and an example."""

from __future__ import annotations

import re

import pytest

from bot.commands import actions
from bot.commands.errors import ParseError
from bot.commands.grammar import (
    GRAMMAR,
    CancelAppointment,
    ChangeRole,
    Connect,
    Reschedule,
    SetSync,
    ShowAgenda,
    ShowAppointment,
    ShowHelp,
    ShowStatus,
    ShowWhoami,
    UserRef,
    parse,
)


def test_every_command_parses_to_its_type() -> None:
    assert parse("") == ShowHelp()
    assert parse("help reschedule") == ShowHelp("reschedule")
    assert isinstance(parse("today"), ShowAgenda)
    agenda = parse("tue @dr-lee")
    assert isinstance(agenda, ShowAgenda) and agenda.practitioner == UserRef(name="dr-lee")
    assert parse("agenda 2026-03-04").day_text == "2026-03-04"  # type: ignore[union-attr]
    assert parse("appointment A-1042") == ShowAppointment(1042)
    r = parse("reschedule a1042 tomorrow 3pm")
    assert isinstance(r, Reschedule) and r.appointment_id == 1042 and str(r.when.time) == "15:00"
    assert parse("cancel A-7 patient  is sick") == CancelAppointment(7, "patient is sick")
    assert parse("cancel A-7") == CancelAppointment(7, "")
    assert parse("sync off outlook") == SetSync(False, "outlook")
    assert parse("sync on") == SetSync(True, None)
    assert parse("sync on @!U1") == SetSync(True, UserRef(platform_user_id="U1"))
    assert parse("connect Outlook") == Connect("graph", "outlook")
    assert parse("status") == ShowStatus()
    assert parse("WHOAMI") == ShowWhoami()
    assert parse("role grant staff @!U9") == ChangeRole(True, "staff", UserRef(platform_user_id="U9"))
    assert parse("role grant practitioner @!U9 @dr-lee") == ChangeRole(
        True, "practitioner", UserRef(platform_user_id="U9"), UserRef(name="dr-lee")
    )
    assert parse("role revoke admin @ann") == ChangeRole(False, "admin", UserRef(name="ann"))


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("frobnicate", "I don't know 'frobnicate'"),
        ("reshedule A-1 3pm", "did you mean `reschedule`"),
        ("tomorow", "did you mean `tomorrow`"),
        ("appointment", "which appointment"),
        ("appointment banana", "not an appointment id"),
        ("appointment A-1 A-2", "unexpected 'A-2'"),
        ("reschedule A-1", "when should A-1 move"),
        ("reschedule A-1 25:00", "00:00 to 23:59"),
        ("cancel", "which appointment"),
        ("sync maybe", "sync on"),
        ("sync on @a @b", "unexpected"),
        ("connect myspace", "can't connect 'myspace'"),
        ("connect", "connect what"),
        ("status now", "unexpected 'now'"),
        ("role grant", "role grant"),
        ("role grant overlord @ann", "not a role"),
        ("role grant staff <@U1|ann>", "not a person"),
        ("role revoke staff @ann @dr-lee", "unexpected"),
        ("today @a @b", "one practitioner"),
        ("x" * 1001, "too long"),
        ("help nothing", None),
    ],
)
def test_bad_input_says_what_and_shows_an_example(text: str, needle: str | None) -> None:
    if needle is None:  # `help <unknown>` is caught by the handler, the parse itself is fine
        assert parse(text) == ShowHelp("nothing")
        return
    with pytest.raises(ParseError) as info:
        parse(text)
    assert needle in info.value.message
    assert info.value.example
    # every example offered is itself valid input
    parse(info.value.example)


def test_help_examples_all_parse_and_usages_name_the_command() -> None:
    for spec in GRAMMAR:
        cmd = parse(spec.example)
        assert cmd is not None
        assert spec.usage.split()[0].split("|")[0] == spec.name


def test_slack_style_mentions_are_normalized_by_front_ends_not_here() -> None:
    # The grammar only knows @!<id> and @name; raw platform markup is refused, never half-read.
    with pytest.raises(ParseError):
        parse("role grant staff <@U123|ann>")


def test_actions_round_trip_and_refuse_tampering() -> None:
    from datetime import UTC, date, datetime

    samples: list[actions.Action] = [
        actions.OpenReschedule(12, 3),
        actions.SubmitReschedule(12, 3, date(2026, 3, 4), "15:30", 7),
        actions.SubmitReschedule(12, 3, None, None, None),
        actions.PickSlot(12, 3, datetime(2026, 3, 4, 15, tzinfo=UTC)),
        actions.AskCancel(12, 3),
        actions.CancelConfirmed(12, 3, "patient sick"),
        actions.ShowDetails(12),
    ]
    for a in samples:
        action_id, value = actions.encode(a)
        assert re.fullmatch(r"[a-z_]+", action_id)
        assert len(value) < 2000
        assert actions.decode(action_id, value) == a
    for action_id, value in [
        ("nope", "{}"),
        ("cancel", "not json"),
        ("cancel", "[]"),
        ("cancel", '{"a": 1}'),
        ("cancel", '{"a": "x", "v": 1}'),
        ("cancel", '{"a": true, "v": 1}'),
        ("reschedule_submit", '{"a": 1, "v": 1, "t": "25:00"}'),
        ("reschedule_submit", '{"a":1,"v":1,"d":"3/4"}'),
        ("pick_slot", '{"a": 1, "v": 1, "s": "2026-03-04T15:00"}'),
        ("details", "x" * 3000),
    ]:
        with pytest.raises(ParseError):
            actions.decode(action_id, value)


def test_a_person_can_be_named_in_plain_text() -> None:
    assert parse("role grant staff Alex Wilber") == ChangeRole(True, "staff", UserRef(name="Alex Wilber"))
    assert parse("role grant staff @Alex Wilber") == ChangeRole(True, "staff", UserRef(name="Alex Wilber"))
    assert parse("role grant practitioner Sam Kim @dr-kim") == ChangeRole(
        True, "practitioner", UserRef(name="Sam Kim"), UserRef(name="dr-kim")
    )
