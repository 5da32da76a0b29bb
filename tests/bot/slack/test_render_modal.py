"""The reschedule modal and the "still working" / result modals, built as plain JSON (like agendas and
cards): slack_sdk's view model, given the same content, must give exactly the same JSON, with every
optional part, with text past Slack's caps, and for every view a slow submit can end in."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from slack_sdk.models.blocks import (
    ContextBlock,
    DatePickerElement,
    InputBlock,
    MarkdownTextObject,
    Option,
    SectionBlock,
    StaticSelectElement,
    TimePickerElement,
)
from slack_sdk.models.views import View as SlackView

from bot.commands.actions import AskCancel, OpenReschedule
from bot.slack import render
from bot.slack.elements import clip, esc
from bot.views import AgendaItem, Error, Notice, RescheduleForm
from bot.views.models import AppointmentDetail

START = datetime(2026, 11, 21, 9, tzinfo=UTC)


def _with_sdk(form: RescheduleForm, metadata: str) -> dict[str, Any]:
    """The modal as slack_sdk's models build it (what `render.modal` built before it was plain JSON)."""
    blocks: list[Any] = [SectionBlock(text=MarkdownTextObject(text=clip(esc(form.summary), 3000)))]
    blocks.append(
        InputBlock(
            block_id="date",
            label="Date",
            element=DatePickerElement(action_id="value", initial_date=form.date.isoformat()),
        )
    )
    blocks.append(
        InputBlock(
            block_id="time",
            label=f"Time ({form.timezone})",
            element=TimePickerElement(action_id="value", initial_time=form.time),
        )
    )
    if form.practitioners:
        options = [Option(value=str(pid), label=clip(name, 75)) for pid, name in form.practitioners[:100]]
        initial = next((o for o in options if o.value == str(form.practitioner_id)), None)
        blocks.append(
            InputBlock(
                block_id="practitioner",
                label="Practitioner",
                element=StaticSelectElement(action_id="value", options=options, initial_option=initial),
            )
        )
    if form.suggestions:
        text = "Next free: " + ", ".join(label for _, label in form.suggestions)
        blocks.append(ContextBlock(elements=[MarkdownTextObject(text=clip(text, 3000))]))
    for problem in form.errors.values():
        blocks.append(ContextBlock(elements=[MarkdownTextObject(text=clip(f":warning: {esc(problem)}", 3000))]))
    return SlackView(
        type="modal",
        callback_id=render.MODAL_CALLBACK,
        title=clip(f"Reschedule {form.ref}", 24),
        submit="Reschedule",
        close="Close",
        private_metadata=metadata,
        blocks=blocks,
    ).to_dict()


def _form(**changes: Any) -> RescheduleForm:
    base: dict[str, Any] = dict(
        appointment_id=7, ref="A-7", version=2, summary="A-7 · Sat 21 Nov 09:00 · Jane <Roe> & Co · Physio",
        date=date(2026, 11, 21), time="09:00", timezone="Europe/London", practitioner_id=3,
        practitioners=((3, "Dr Lee"), (4, "Dr Patel")), errors={}, suggestions=(),
    )  # fmt: skip
    base.update(changes)
    return RescheduleForm(**base)


@pytest.mark.parametrize(
    "form",
    [
        _form(),
        _form(practitioners=()),  # a practitioner may move only their own: no picker
        _form(practitioner_id=99),  # the chosen one is not offered: no initial option
        _form(
            errors={"time": "Sat 21 Nov 10:00 is taken (A-12)", "": "A-7 changed since that card"},
            suggestions=((START, "Sat 21 Nov 11:00"), (START + timedelta(hours=1), "Sat 21 Nov 12:00")),
        ),
        _form(
            ref="A-123456789012",
            summary="x" * 4000,  # past the title's and a section's caps
            practitioners=tuple((i, f"Dr {'N' * 90} {i}") for i in range(120)),
            practitioner_id=5,
        ),
    ],
)
def test_the_modal_is_what_slack_sdks_models_give(form: RescheduleForm) -> None:
    meta = '{"action":{"a":7,"v":2},"origin":{"r":"https://hooks.slack.test/r","c":"C1","t":null,"e":true}}'
    assert render.modal(form, meta) == _with_sdk(form, meta)


def _sdk_result(blocks: list[dict[str, Any]]) -> dict[str, Any]:
    return SlackView(type="modal", title="Reschedule", close="Close", blocks=blocks).to_dict()


def test_the_still_working_modal_is_what_slack_sdks_models_give() -> None:
    text = "Still working on it…"
    assert render.working_modal(text) == _sdk_result([SectionBlock(text=MarkdownTextObject(text=text)).to_dict()])


@pytest.mark.parametrize(
    "view",
    [
        AppointmentDetail(
            item=AgendaItem(
                appointment_id=7,
                ref="A-7",
                version=3,
                start=START,
                end=START + timedelta(minutes=30),
                time_label="09:00–09:30",
                practitioner="Dr Lee",
                client="Jane <Roe> & Co",
                service="Physio",
                status="confirmed",
                actions=(OpenReschedule(7, 3), AskCancel(7, 3)),
            ),
            date_label="Sat 21 Nov",
            location="Room 2",
            notes="knee",
            calendars=(("Dr Lee (mirror)", "pending"),),
            notice="Moved A-7 from Fri 20 Nov 09:00 to Sat 21 Nov 09:00.",
            note="",
            phone="",
        ),
        Error("that slot was taken a moment ago; pick another time", kind="conflict"),
        Notice("Done", title="Moved"),
        _form(errors={"time": "taken"}),
    ],
)
def test_a_result_modal_is_what_slack_sdks_models_give(view: Any) -> None:
    _, blocks = render.message(view)
    assert render.result_modal(view) == _sdk_result(blocks)
