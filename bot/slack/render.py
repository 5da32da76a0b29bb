"""View -> Block Kit. Built with slack_sdk's block models, so every payload is one Slack accepts.

`message(view)` gives (fallback text, blocks) for chat.postMessage, response_url and chat.update;
`modal(form, metadata)` gives the reschedule modal. Text from people (client names, reasons) is
escaped for mrkdwn. Slack caps a message at 50 blocks; long agendas say how many were left out.
"""

from __future__ import annotations

from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    HeaderBlock,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
)

from bot.commands.actions import (
    OpenReschedule,
    PickSlot,
    ShowDetails,
)
from bot.slack import conflict_render, lead_render, reminder_render, shift_render, staff_render
from bot.slack.elements import ACTION_PREFIX, button, button_json, clip, esc
from bot.views import (
    Agenda,
    AgendaItem,
    AppointmentDetail,
    ConfirmCancel,
    ConnectInfo,
    Error,
    FollowUp,
    FollowUpRequest,
    Help,
    Notice,
    Reconnect,
    ReminderCard,
    RescheduleForm,
    StaffCard,
    Status,
    View,
    Whoami,
)

__all__ = ["ACTION_PREFIX", "MODAL_CALLBACK", "message", "modal", "result_modal", "working_modal"]

MODAL_CALLBACK = "clinic.reschedule"
MAX_AGENDA_ITEMS = 22  # 2 blocks each, under Slack's 50-block cap with header and footer
MAX_BLOCKS = 50


def _md(text: str) -> SectionBlock:
    return SectionBlock(text=MarkdownTextObject(text=clip(text, 3000)))


def _context(text: str) -> ContextBlock:
    return ContextBlock(elements=[MarkdownTextObject(text=clip(text, 3000))])


def _item_line(item: AgendaItem) -> str:
    service = f" · {esc(item.service)}" if item.service else ""
    status = "" if item.status in ("confirmed",) else f" · _{item.status.replace('_', ' ')}_"
    return (
        f"*{item.time_label}*  `{item.ref}`  {esc(item.client)}{service}{status}\n_{esc(item.practitioner)}_"
    )


def _mrkdwn(text: str) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": clip(text, 3000)}


def _md_json(text: str) -> dict[str, Any]:
    """`_md` as plain JSON."""
    return {"type": "section", "text": _mrkdwn(text)}


def _context_json(text: str) -> dict[str, Any]:
    """`_context` as plain JSON."""
    return {"type": "context", "elements": [_mrkdwn(text)]}


def agenda_json(view: Agenda) -> list[dict[str, Any]]:
    """The day's agenda as Block Kit JSON: a header, per visit a section and its buttons, a footer.

    Built as plain dicts, not with slack_sdk's models, which check every object as they build it
    (2.4 ms for an 8-visit day): agendas are rendered for every answer the cache does not hold.
    Tests parse every block with slack_sdk's models, which must give back exactly these dicts."""
    mrkdwn = _mrkdwn
    blocks: list[dict[str, Any]] = [{"type": "header", "text": {"type": "plain_text", "text": clip(view.title, 150)}}]
    if not view.items:
        blocks.append({"type": "section", "text": mrkdwn(esc(view.empty_text))})
    for item in view.items[:MAX_AGENDA_ITEMS]:
        blocks.append({"type": "section", "block_id": f"appt:{item.appointment_id}", "text": mrkdwn(_item_line(item))})
        if item.actions:
            elements = [button_json(a) for a in item.actions]
            blocks.append({"type": "actions", "block_id": f"acts:{item.appointment_id}", "elements": elements})
    if view.shifts:
        lines = [f"*{w.time_label}*  {esc(w.title)}  _{esc(w.person)}_" for w in view.shifts[:MAX_AGENDA_ITEMS]]
        blocks.append({"type": "section", "block_id": "shifts",
                       "text": mrkdwn(clip("*On shift*\n" + "\n".join(lines), 3000))})
    if view.work or view.work_unavailable:
        blocks.append({"type": "divider"})
        # One block per work event, in what the appointments leave of the 50 (heading, the
        # unreadable calendars, "more" and the footer still to come).
        room = max(MAX_BLOCKS - len(blocks) - 5, 0)
        more = len(view.work) - room
        heading = "*Work calendars* (not appointments)" + (
            f" · {more} more not shown: `/clinic today @practitioner` narrows it" if more > 0 else "")
        blocks.append({"type": "section", "block_id": "work", "text": mrkdwn(heading)})
        for n, w in enumerate(view.work[:room]):
            tracked = f" · tracked as `{w.tracked}`" if w.tracked else ""
            line = f"*{w.time_label}*  {esc(w.title)}  _{esc(w.person)}_  `{w.ref}`{tracked}"
            section: dict[str, Any] = {"type": "section", "block_id": f"work:{n}", "text": mrkdwn(line)}
            if w.actions:
                section["accessory"] = button_json(w.actions[0])
            blocks.append(section)
        if view.work_unavailable:
            blocks.append({"type": "section", "block_id": "work_unavailable", "text": mrkdwn("\n".join(
                f"_{esc(name)} could not be read just now_" for name in view.work_unavailable))})
    blocks.append({"type": "context", "elements": [mrkdwn(_agenda_footer(view))]})
    return blocks


def _agenda_footer(view: Agenda) -> str:
    more = len(view.items) - MAX_AGENDA_ITEMS
    footer = f"{len(view.items)} appointment{'s' if len(view.items) != 1 else ''} · times in {view.timezone}"
    if more > 0:
        footer += f" · {more} more not shown: narrow it with `/clinic today @practitioner`"
    return footer


def _detail(view: AppointmentDetail) -> list[dict[str, Any]]:
    """One appointment's card, as plain JSON (see agenda_json: every details press renders one)."""
    item = view.item
    blocks: list[dict[str, Any]] = []
    if view.notice:
        blocks.append(_md_json(f":white_check_mark: {esc(view.notice)}"))
    fields = [
        f"*When*\n{view.date_label} {item.time_label}",
        f"*Practitioner*\n{esc(item.practitioner)}",
        f"*Client*\n{esc(item.client)}",
        f"*Status*\n{item.status.replace('_', ' ')}",
    ]
    if view.phone:
        fields.append(f"*Phone*\n{esc(clip(view.phone, 60))}")
    if item.service:
        fields.append(f"*Service*\n{esc(item.service)}")
    if view.location:
        fields.append(f"*Where*\n{esc(clip(view.location, 500))}")
    blocks.append({"type": "section", "block_id": f"appt:{item.appointment_id}",
                   "text": {"type": "mrkdwn", "text": f"*{item.ref}*"},
                   "fields": [{"type": "mrkdwn", "text": clip(f, 2000)} for f in fields]})  # Slack's cap on a field
    if view.note:
        blocks.append(_context_json(esc(clip(view.note, 2900))))
    if view.notes:
        blocks.append(_md_json(f"*Notes*\n{esc(clip(view.notes, 2500))}"))
    if view.calendars:
        blocks.append(_context_json("Synced to: " + ", ".join(f"{esc(n)} ({s})" for n, s in view.calendars)))
    if item.actions:
        blocks.append({"type": "actions", "block_id": f"acts:{item.appointment_id}",
                       "elements": [button_json(a) for a in item.actions]})
    return blocks


def _form_message(view: RescheduleForm) -> list[Block]:
    blocks: list[Block] = [_md(f"*Reschedule {view.ref}*\n{esc(view.summary)}")]
    for problem in view.errors.values():
        blocks.append(_md(f":warning: {esc(problem)}"))
    buttons = [
        button(PickSlot(view.appointment_id, view.version, start, view.practitioner_id), label)
        for start, label in view.suggestions
    ]
    buttons.append(button(OpenReschedule(view.appointment_id, view.version), "Pick another time"))
    if view.suggestions:
        blocks.append(_context("Next free slots:"))
    blocks.append(ActionsBlock(block_id=f"slots:{view.appointment_id}", elements=buttons))
    return blocks


def _confirm(view: ConfirmCancel) -> list[dict[str, Any]]:
    """The cancel confirmation, as plain JSON (see agenda_json)."""
    reason = f"\nReason: {esc(view.reason)}" if view.reason else ""
    return [
        _md_json(
            f"*Cancel {view.ref}?*\n{esc(view.summary)}{reason}\n"
            "The client's booking is cancelled everywhere it is synced."
        ),
        {"type": "actions", "block_id": f"confirm:{view.appointment_id}",
         "elements": [button_json(view.confirm), button_json(ShowDetails(view.appointment_id), "Keep it")]},
    ]


def _status(view: Status) -> list[Block]:
    blocks: list[Block] = [
        HeaderBlock(text=PlainTextObject(text=clip(f"Sync status · {view.practice}", 150)))
    ]
    if not view.connections:
        blocks.append(
            _md("No calendars are connected yet. `/clinic connect` lists the kinds you can connect.")
        )
    for c in view.connections[:20]:
        healthy = c.token_health == "ok" and not c.failed  # noqa: S105 - a status word, not a secret
        icon = ":large_green_circle:" if healthy else ":red_circle:"
        fields = [
            MarkdownTextObject(text=f"*Last sync*\n{c.last_sync}"),
            MarkdownTextObject(text=f"*Sync*\n{'on' if c.sync_enabled else 'off'}"),
            MarkdownTextObject(text=f"*Pending / failed*\n{c.pending} / {c.failed}"),
            MarkdownTextObject(text=f"*Sign-in*\n{esc(c.token_health)}"),
        ]
        blocks.append(
            SectionBlock(
                text=MarkdownTextObject(text=f"{icon} *{esc(c.provider)}* {esc(c.account)}"), fields=fields
            )
        )
        extra = ", ".join(esc(x) for x in c.calendars)
        if c.last_error:
            extra += ("\n" if extra else "") + f"Last error: {esc(c.last_error)}"
        if extra:
            blocks.append(_context(extra))
    if view.reminders is not None:
        blocks += reminder_render.reminder_health_blocks(view.reminders)
    if view.files_kept or view.files_purged:
        blocks.append(_context(f"Tracked activities' files: {view.files_kept} kept (7 days at most) · "
                               f"{view.files_purged} deleted by the last retention run"))
    if view.shift_publish:
        blocks.append(_context(esc(view.shift_publish)))
    blocks.append(_context(f"{view.pending_total} pending · {view.failed_total} failed"))
    return blocks


def _help(view: Help) -> list[Block]:
    lines = [
        f"`{esc(e.usage)}` {esc(e.summary)}"
        + (f" _({esc(e.needs)})_" if e.needs else "")
        + f"\n      e.g. `/clinic {esc(e.example)}`"
        for e in view.entries
    ]
    blocks: list[Block] = []
    if view.intro:
        blocks.append(_md(esc(f"Type `/clinic <command>`. {view.intro}")))
    blocks.append(_md("\n".join(lines)))
    return blocks


def _links(title: str, url: str | None, steps: tuple[str, ...], label: str) -> list[Block]:
    text = f"*{esc(title)}*" + "".join(f"\n• {esc(s)}" for s in steps)
    if url:
        return [
            SectionBlock(
                text=MarkdownTextObject(text=clip(text, 3000)),
                accessory=ButtonElement(text=label, url=url, action_id="clinic.link", style="primary"),
            )
        ]
    return [_md(text)]


def message(view: View) -> tuple[str, list[dict[str, Any]]]:
    """Fallback text and Block Kit blocks for a message."""
    blocks: list[Block]
    if isinstance(view, conflict_render.CONFLICT_VIEWS):
        text, blocks = conflict_render.blocks_for(view)
        return clip(text, 300), [b.to_dict() for b in blocks]
    if isinstance(view, StaffCard):
        return staff_render.blocks_for(view)
    if isinstance(view, shift_render.SHIFT_VIEWS):
        return shift_render.blocks_for(view)
    if isinstance(view, lead_render.LEAD_VIEWS):
        text, blocks = lead_render.blocks_for(view)
        return clip(text, 300), [b.to_dict() for b in blocks]
    match view:
        case Agenda():
            return clip(view.title, 300), agenda_json(view)
        case AppointmentDetail():
            return clip(view.notice or f"{view.item.ref} {view.date_label} {view.item.time_label}", 300), _detail(view)
        case RescheduleForm():
            text, blocks = next(iter(view.errors.values()), f"Reschedule {view.ref}"), _form_message(view)
        case ConfirmCancel():
            return clip(f"Cancel {view.ref}?", 300), _confirm(view)
        case Status():
            text, blocks = f"Sync status: {view.failed_total} failed", _status(view)
        case Whoami():
            roles = ", ".join(view.roles) or "no role yet"
            who = f"\nPractitioner: {esc(view.practitioner)}" if view.practitioner else ""
            text = f"You are {view.display}"
            blocks = [
                _md(
                    f"You are *{esc(view.display)}* on {view.platform} in *{esc(view.practice)}* "
                    f"({view.timezone}).\nRoles: {roles}{who}"
                )
            ]
        case Help():
            text, blocks = "What I can do", _help(view)
        case Error():
            text = view.message
            blocks = [_md(f":warning: {esc(view.message)}")]
            if view.example:
                blocks.append(_context(f"Try: `/clinic {esc(view.example)}`"))
        case Notice():
            text = view.text
            blocks = [_md((f"*{esc(view.title)}*\n" if view.title else "") + esc(view.text))]
        case Reconnect():
            text = f"Reconnect {view.provider}"
            blocks = _links(
                f"The sign-in for {view.provider} {view.account} has expired; sync is paused.",
                view.url,
                view.steps,
                "Reconnect",
            )
        case ConnectInfo():
            text, blocks = view.title, _links(view.title, view.url, view.steps, "Sign in")
        case ReminderCard() | FollowUp() | FollowUpRequest():
            text, blocks = reminder_render.blocks_for(view)
        case _:
            raise TypeError(f"no Slack rendering for {type(view).__name__}")
    return clip(text, 300), [b.to_dict() for b in blocks]


def _plain(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text, "emoji": True}


def modal(form: RescheduleForm, metadata: str) -> dict[str, Any]:
    """The reschedule modal: date, time and practitioner inputs, prefilled from the form.

    Plain JSON, like agendas (slack_sdk's view model checks every object as it builds it; a modal
    is built for every Reschedule press): tests build the same modal with slack_sdk's models and
    compare."""
    blocks: list[dict[str, Any]] = [_md_json(esc(form.summary))]
    blocks.append({"type": "input", "block_id": "date", "label": _plain("Date"),
                   "element": {"type": "datepicker", "action_id": "value", "initial_date": form.date.isoformat()}})
    blocks.append({"type": "input", "block_id": "time", "label": _plain(f"Time ({form.timezone})"),
                   "element": {"type": "timepicker", "action_id": "value", "initial_time": form.time}})
    if form.practitioners:
        options = [{"text": _plain(clip(name, 75)), "value": str(pid)} for pid, name in form.practitioners[:100]]
        element: dict[str, Any] = {"type": "static_select", "action_id": "value", "options": options}
        initial = next((o for o in options if o["value"] == str(form.practitioner_id)), None)
        if initial is not None:
            element["initial_option"] = initial
        blocks.append({"type": "input", "block_id": "practitioner", "label": _plain("Practitioner"),
                       "element": element})
    if form.suggestions:
        blocks.append(_context_json("Next free: " + ", ".join(label for _, label in form.suggestions)))
    for problem in form.errors.values():
        blocks.append(_context_json(f":warning: {esc(problem)}"))
    return {
        "type": "modal",
        "callback_id": MODAL_CALLBACK,
        "title": _plain(clip(f"Reschedule {form.ref}", 24)),
        "submit": _plain("Reschedule"),
        "close": _plain("Close"),
        "private_metadata": metadata,
        "blocks": blocks,
    }


def _result(blocks: list[dict[str, Any]]) -> dict[str, Any]:
    return {"type": "modal", "title": _plain("Reschedule"), "close": _plain("Close"), "blocks": blocks}


def working_modal(text: str) -> dict[str, Any]:
    """A modal that says the change is still being made (for slow submits); plain JSON, as `modal`."""
    return _result([_md_json(esc(text))])


def result_modal(view: View) -> dict[str, Any]:
    """A modal showing a finished result (after a slow submit); plain JSON, as `modal`."""
    _, blocks = message(view)
    return _result(list(blocks))
