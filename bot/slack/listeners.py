"""The bolt listeners: translate Slack payloads into Commands/Actions, acknowledge, and answer later.

Every listener acknowledges at once (bolt runs with process_before_response=True, so the HTTP
response leaves as soon as the listener returns) and hands the real work to a `Background`
queue. Cheap answers (bad input, help) go straight into the acknowledgement. The one exception is
the reschedule modal's submit: Slack only shows field errors in the acknowledgement itself, so it
checks the slot inline, within a 2-second budget; past that it acks "still working" and finishes
in the background.

Agendas are kept in an `AnswerCache` once built (see bot/commands/answers.py): a repeat of the
same `/clinic today` by anyone who sees the same (`agenda_audience`: the practice's staff, or one
practitioner) is then answered inside the acknowledgement itself
(`cached_answer`, called by the server before bolt sees the request), with no database work and
no second message. Anything else, and any miss, takes the path above.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import re
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import date
from typing import Any, TypeVar

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from bot.background import Background
from bot.commands import Actor, ParseError, decode, handle, parse
from bot.commands.actions import Action, OpenReschedule, SubmitReschedule
from bot.commands.actor_cache import ActorCache
from bot.commands.admin import help_view
from bot.commands.answers import AnswerCache, agenda_audience, agenda_days, until_midnight
from bot.commands.grammar import Command, ShowAgenda, ShowHelp
from bot.commands.shift_upload import import_file, require_publisher
from bot.slack import render
from bot.slack.elements import input_action
from bot.slack.uploads import SeenFiles, SlackFile, fetch_slack_file, file_from_info, files_in_message
from bot.views import Agenda, Error, RescheduleForm, View
from sync.runtime.core import Core
from sync.services.errors import ServiceError

__all__ = ["COMMAND", "SlackListeners", "normalize_text"]

log = logging.getLogger("clinicbot.slack")

COMMAND = "/clinic"
SUBMIT_BUDGET = 2.0  # seconds; Slack drops a view_submission ack after 3
ANSWER_BUDGET = 1.0  # seconds a slash command waits for its agenda being built before acking without it
#: The same budgets while other requests are in flight (`busy()`): an ack that waits for database
#: work there holds its connection and queues the acks behind it (bench.chat_mix: p99 ack 2 s at
#: 64 connections). Under load a slash command is answered from the cache or acked at once (its
#: answer follows at the response_url, from the same shared build), and a modal submit that is not
#: checked within SUBMIT_BUDGET_BUSY shows "Still working" and is updated with the result.
SUBMIT_BUDGET_BUSY = 0.015
#: Modal submits under way at once (each moves an appointment, holding a database connection and,
#: on SQLite, waiting for the one write lock); past that, a submit is answered "busy" at once. With the
#: 16 + 4 queue workers that stays under the pool's 30 connections.
SUBMITS_AT_ONCE = 8
ANSWER_BUDGET_BUSY = 0.0
#: Seconds a known person's request waits for their (shared) lookup when their actor entry has
#: expired, busy or not: that lookup is one quick query, while the listener path it would otherwise
#: take costs more CPU and a second message (bench.slack_ack: with no wait, every request in flight
#: when an entry expired took that path, 1,350 req/s instead of 5,150).
ACTOR_BUDGET = ANSWER_BUDGET
_MENTION = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^>]*)?>")
_CHANNEL = re.compile(r"<#[A-Z0-9]+\|([^>]*)>")
_LINK = re.compile(r"<(?:mailto:)?([^|>]+)(?:\|([^>]*))?>")
T = TypeVar("T")
#: A modal submit's answer when too much work is queued to take it (shown under the time field).
BUSY_SUBMIT = "I'm busy right now; press Reschedule again in a few seconds. Nothing was changed."
#: A slash command's and a button's answer when too much work is queued to take it.
BUSY_COMMAND = "I'm busy right now; try again in a few seconds."
BUSY_BUTTON = "I'm busy right now; press the button again in a few seconds."


def normalize_text(text: str) -> str:
    """Slack markup -> grammar text: user mentions become `@!<user id>`, links their label."""
    text = _MENTION.sub(lambda m: f"@!{m.group(1)}", text)
    text = _CHANNEL.sub(lambda m: f"#{m.group(1)}", text)
    text = _LINK.sub(lambda m: m.group(2) or m.group(1), text)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a result goes: the message a button sat in, or the channel a command came from."""

    response_url: str | None = None
    channel: str | None = None
    ts: str | None = None
    ephemeral: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {"r": self.response_url, "c": self.channel, "t": self.ts, "e": self.ephemeral}

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> Origin:
        container = body.get("container") or {}
        channel = (body.get("channel") or {}).get("id") or container.get("channel_id")
        return cls(
            body.get("response_url"),
            channel,
            container.get("message_ts"),
            bool(container.get("is_ephemeral", True)),
        )


@dataclass(frozen=True, slots=True)
class Rendered:
    """A built answer: what a response_url post sends, and the same as an acknowledgement body."""

    text: str
    blocks: list[dict[str, Any]]
    ack_body: bytes
    #: The UTC dates whose appointments it shows (an agenda), else ().
    days: tuple[date, ...] = ()


@functools.lru_cache(maxsize=256)
def _agenda_command(text: str) -> ShowAgenda | None:
    """The command in `text` if it asks for an agenda (parsing is pure: "today" stays relative)."""
    try:
        command = parse(normalize_text(text))
    except ParseError:
        return None
    return command if isinstance(command, ShowAgenda) else None


async def _within(work: Coroutine[Any, Any, T], seconds: float) -> T:
    """`work`'s result if it is done within `seconds`, else TimeoutError; the work goes on either way
    (others may be waiting for it too) and its failure, if nobody is left to hear it, is dropped."""
    task = asyncio.ensure_future(work)
    task.add_done_callback(lambda done: None if done.cancelled() else done.exception())
    return await asyncio.wait_for(asyncio.shield(task), seconds)


def _shown_days(rendered: Rendered) -> tuple[date, ...]:
    return rendered.days


def _reason(exc: Exception) -> str:
    """A failure's message for the log, bounded; our errors and URL errors carry no patient data."""
    return str(exc).replace("\n", " ")[:200]


def _who(body: dict[str, Any]) -> tuple[str, str, str]:
    """(team id, user id, display) from a command or interaction payload."""
    user = body.get("user") or {}
    if isinstance(user, dict) and user:
        team = user.get("team_id") or (body.get("team") or {}).get("id") or ""
        return str(team), str(user.get("id", "")), str(user.get("username") or user.get("name") or "")
    return str(body.get("team_id", "")), str(body.get("user_id", "")), str(body.get("user_name", ""))


class SlackListeners:
    def __init__(self, core: Core, background: Background, http: Any = None) -> None:
        self.core = core
        self.background = background
        #: Where a Reschedule press opens its modal: apart from the answers' queue, since Slack refuses
        #: a trigger_id older than 3 seconds, and behind a backlog of answers the modal never opened
        #: (bench.chat_mix: "expired_trigger_id" under load). The server sets and runs it.
        self.modals: Background | None = None
        self.http = http  # aiohttp.ClientSession for response_url posts, set once the server runs
        self.actors = ActorCache(core, "slack")
        core.services.actor_caches.append(self.actors)
        self.answers: AnswerCache[Rendered] = AnswerCache(core.store)
        #: True while other requests are in flight (the server sets it): acks then wait for nothing slow
        self.busy: Callable[[], bool] = lambda: False
        self._refreshing: set[asyncio.Future[Rendered]] = set()  # strong references to refresh tasks
        self._telling: set[asyncio.Future[None]] = set()  # and to "busy" messages being sent
        self._submitting = 0  # modal submits under way (started, not finished)
        #: How long a modal submit may work before its ack says "still working" and it finishes in the
        #: background (None: as long as it takes; tests that read the answer in the ack use it).
        self.submit_budget: float | None = SUBMIT_BUDGET
        self.files = SeenFiles()

    def register(self, bolt: AsyncApp) -> None:
        bolt.command(COMMAND)(self.on_command)
        bolt.action(re.compile(r"^clinic\.(?!link$)"))(self.on_action)
        bolt.action("clinic.link")(self.on_link)
        bolt.view_submission(render.MODAL_CALLBACK)(self.on_submit)
        bolt.view_closed(render.MODAL_CALLBACK)(self.on_closed)
        bolt.event("message")(self.on_message)
        bolt.event("file_shared")(self.on_file_shared)

    # --- delivery -----------------------------------------------------------------------------
    async def respond(self, origin: Origin, view: View, client: AsyncWebClient | None, replace: bool) -> None:
        """Show `view` where the request came from; update the original message when `replace`."""
        text, blocks = render.message(view)
        await self.deliver(origin, text, blocks, isinstance(view, Error), client, replace)

    async def deliver(
        self,
        origin: Origin,
        text: str,
        blocks: list[dict[str, Any]],
        error: bool,
        client: AsyncWebClient | None,
        replace: bool,
    ) -> None:
        if (
            replace
            and not error
            and not origin.ephemeral
            and origin.channel
            and origin.ts
            and client is not None
        ):
            await client.chat_update(channel=origin.channel, ts=origin.ts, text=text, blocks=blocks)
            return
        if origin.response_url:
            hook = AsyncWebhookClient(origin.response_url, session=self.http)
            resp = await hook.send(
                text=text, blocks=blocks, response_type="ephemeral", replace_original=replace and not error
            )
            if resp.status_code >= 400:
                log.warning("response_url refused the answer", extra={"status": resp.status_code})
            return
        log.warning("nowhere to send a Slack answer")

    async def _actor(self, body: dict[str, Any]) -> Actor:
        team, user, display = _who(body)
        return await self.actors.resolve(team, user, display)

    # --- agendas, built once and reused -------------------------------------------------------
    async def cached_answer(self, fields: dict[str, str]) -> bytes | None:
        """The acknowledgement body answering this slash command with its agenda, or None.

        Called with the fields of a signed form body before bolt sees the request. It answers only
        an agenda asked by a person known from a recent request (the actor cache): from the answer
        cache at once, or, when the agenda is being (re)built, by waiting for that one shared
        build up to ANSWER_BUDGET (ANSWER_BUDGET_BUSY under load). None means: let bolt and the
        listeners handle it (ack, then answer at the response_url).
        """
        if fields.get("command") != COMMAND:
            return None
        command = _agenda_command(fields.get("text", ""))
        if command is None:
            return None
        team, user, display = fields.get("team_id", ""), fields.get("user_id", ""), fields.get("user_name", "")
        budget = ANSWER_BUDGET_BUSY if self.busy() else ANSWER_BUDGET
        actor = self.actors.peek(team, user, display)
        if actor is None:
            if not self.actors.known(team, user):
                return None  # a first contact may create the person and the practice: bolt's path
            try:  # known but expired: one shared lookup for every request in flight, joined even
                # under load (ACTOR_BUDGET): bolt's path would do the same lookup, and cost more
                actor = await _within(self.actors.resolve(team, user, display), ACTOR_BUDGET)
            except Exception:  # TimeoutError or a database error: the listener path reports it
                return None
        else:
            self.actors.refresh_due(team, user, display)
        found = self.answers.lookup((agenda_audience(actor), command))
        if found is not None:
            hit, due = found
            if due and self.background.admits():  # rebuilt now, off the request, so repeats keep hitting
                task = asyncio.ensure_future(self._rebuild(actor, command))
                self._refreshing.add(task)
                task.add_done_callback(self._refreshed)
            return hit.ack_body
        if not self.background.admits():
            # Too much queued: bolt's path acks "busy". A build started here would run anyway, for
            # nobody (under overload, the builds of refused requests took the CPU their answers needed).
            return None
        try:
            built = await _within(self._rebuild(actor, command), budget)
        except Exception:  # TimeoutError (the build goes on and is kept) or a failure
            return None  # this request takes the listener path, which reports any error properly
        return built.ack_body

    def _refreshed(self, task: asyncio.Future[Rendered]) -> None:
        self._refreshing.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("rebuilding an agenda failed", extra={"error": type(task.exception()).__name__})

    async def _agenda(self, actor: Actor, command: ShowAgenda) -> Rendered:
        """The agenda from the answer cache while it is good, else built (one shared build)."""
        kept = self.answers.get((agenda_audience(actor), command))
        return kept if kept is not None else await self._rebuild(actor, command)

    async def _rebuild(self, actor: Actor, command: ShowAgenda) -> Rendered:
        return await self.answers.build(
            (agenda_audience(actor), command), lambda: self._build_agenda(actor, command), scope=actor.practice_id,
            days=_shown_days,
        )

    async def _build_agenda(self, actor: Actor, command: ShowAgenda) -> tuple[Rendered, float]:
        view = await handle(self.core, actor, command)
        text, blocks = render.message(view)
        body = {"response_type": "ephemeral", "text": text, "blocks": blocks}
        # Errors (not linked, no such practitioner) are not kept: the next try asks the database.
        if not isinstance(view, Agenda):
            return Rendered(text, blocks, json.dumps(body, separators=(",", ":")).encode()), 0.0
        days = agenda_days(view.day, view.timezone)
        rendered = Rendered(text, blocks, json.dumps(body, separators=(",", ":")).encode(), days)
        return rendered, until_midnight(self.core.clock(), view.timezone)

    def _later(
        self, job: Any, step: str, origin: Origin | None = None, client: AsyncWebClient | None = None,
        queue: Background | None = None, force: bool = False,
    ) -> bool:
        """Queue `job` to run after the ack; False when the queue is too long (the person is then told
        "busy"), unless `force` (work already started). If it fails, the log says which step and why
        (WARNING), and the person is told, when `origin` says where and the failure was not in telling them."""

        async def guarded() -> None:
            try:
                await job()
            except (SlackApiError, SlackClientError) as exc:
                log.warning("Slack call failed after the ack", extra={"step": step, "error": type(exc).__name__})
            except Exception as exc:
                log.warning(
                    "work after the ack failed",
                    extra={"step": step, "error": type(exc).__name__, "reason": _reason(exc),
                           "has_response_url": bool(origin and origin.response_url)},
                )
                if origin is not None:
                    await self._apologise(origin, client, step)

        return (queue or self.background).submit(guarded, force=force)

    async def _apologise(self, origin: Origin, client: AsyncWebClient | None, step: str) -> None:
        sorry = Error("Something went wrong on my side after I got that, and it was not finished. Try again; "
                      "if it keeps happening, tell the clinic's admin.", kind="unavailable")
        try:
            await self.respond(origin, sorry, client, replace=False)
        except Exception as exc:  # the way back is what broke (a bad response_url): the log must do
            log.warning("could not tell the person that work after the ack failed",
                        extra={"step": step, "error": type(exc).__name__, "reason": _reason(exc)})

    # --- under overload: "busy" without bolt -----------------------------------------------------
    def shed(self, body: dict[str, Any]) -> tuple[bytes, str] | None:
        """The acknowledgement (body, content type) of a request the listeners would answer "busy"
        because too much work is queued (`Background.admits`), or None: let bolt and the listeners
        handle it. Called by the server with a checked payload before bolt sees it.

        Under overload most requests are answered "busy", and bolt's dispatch was most of what such an
        answer cost: the answers being worked on waited behind them on the event loop. What is decided
        here is what the listeners decide (help, bad input, a cached agenda and a Reschedule press,
        which has its own queue, still take their own path); a button is acknowledged at once and told
        "busy" at its response_url just after, as the listener does.
        """
        kind = body.get("type")
        if kind == "view_submission":
            view = body.get("view") or {}
            if self.may_submit() or view.get("callback_id") != render.MODAL_CALLBACK:
                return None
            try:
                _read_submit(view)
            except ParseError:
                return None  # the form's own error comes first
            self.background.rejected += 1
            return _BUSY_SUBMIT_ACK, "application/json"
        if self.background.admits():
            return None
        if "command" in body:
            if body.get("command") != COMMAND:
                return None
            try:
                if isinstance(parse(normalize_text(str(body.get("text", "")))), ShowHelp):
                    return None  # answered in the ack, without the queue
            except ParseError:
                return None
            self.background.rejected += 1
            return _BUSY_COMMAND_ACK, "application/json"
        if kind != "block_actions":
            return None
        action = body["actions"][0]
        action_id = str(action.get("action_id", ""))
        if not action_id.startswith(render.ACTION_PREFIX) or action_id == "clinic.link":
            return None
        if action.get("type") == "plain_text_input" or "value" not in action:
            return None  # text boxes and selects: the listener's path
        try:
            typed = decode(action_id.removeprefix(render.ACTION_PREFIX), action.get("value"))
        except ParseError:
            return None
        if isinstance(typed, OpenReschedule) and body.get("trigger_id"):
            return None  # the modal queue decides
        self.background.rejected += 1
        origin = Origin.from_body(body)
        task = asyncio.ensure_future(self._tell_busy(origin))
        self._telling.add(task)
        task.add_done_callback(self._telling.discard)
        return b"", "text/plain"

    async def told(self) -> None:
        """Wait until the "busy" messages being sent are sent (tests, shutdown)."""
        while self._telling:
            await asyncio.gather(*self._telling, return_exceptions=True)

    async def _tell_busy(self, origin: Origin) -> None:
        try:
            await self.respond(origin, Error(BUSY_BUTTON, kind="unavailable"), None, replace=False)
        except Exception as exc:
            log.warning("could not tell the person that the server is busy",
                        extra={"error": type(exc).__name__, "reason": _reason(exc)})

    # --- slash command ------------------------------------------------------------------------
    async def on_command(self, ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        try:
            command: Command = parse(normalize_text(str(body.get("text", ""))))
            if isinstance(command, ShowHelp):
                text, blocks = render.message(help_view(command))
                await ack(text=text, blocks=blocks, response_type="ephemeral")
                return
        except ParseError as exc:
            text, blocks = render.message(Error(exc.message, exc.example))
            await ack(text=text, blocks=blocks, response_type="ephemeral")
            return
        origin = Origin(response_url=body.get("response_url"), channel=body.get("channel_id"))

        async def work() -> None:
            actor = await self._actor(body)
            if isinstance(command, ShowAgenda):
                built = await self._agenda(actor, command)
                await self.deliver(origin, built.text, built.blocks, False, client, replace=False)
                return
            await self.respond(origin, await handle(self.core, actor, command), client, replace=False)

        if not self._later(work, "slash command", origin, client):
            await ack(text=BUSY_COMMAND, response_type="ephemeral")
            return
        await ack()

    # --- files sent to the bot (a shift schedule export) ------------------------------------------
    async def on_message(self, ack: AsyncAck, body: dict[str, Any], event: dict[str, Any],
                         client: AsyncWebClient) -> None:
        """A message in the bot's DM: a schedule file in it is imported; anything else is left alone."""
        await ack()
        channel, files = files_in_message(event)
        for file in files[:1]:  # one schedule at a time; a second file in the same message is not read
            if self.files.first(file.file_id):
                self._upload(body, str(event.get("user") or ""), channel, file, client)

    async def on_file_shared(self, ack: AsyncAck, body: dict[str, Any], event: dict[str, Any],
                             client: AsyncWebClient) -> None:
        """A file shared in the bot's DM: its details from files.info, then the same as a message."""
        await ack()
        file_id, channel = event.get("file_id"), event.get("channel_id")
        if not isinstance(file_id, str) or not isinstance(channel, str) or not channel.startswith("D"):
            return
        if not self.files.first(file_id):
            return
        user = str(event.get("user_id") or "")

        async def work() -> None:
            file = file_from_info((await client.files_info(file=file_id)).data)
            if file is not None:
                self._upload(body, user, channel, file, client)

        self._later(work, "file details")

    def _upload(self, body: dict[str, Any], user: str, channel: str, file: SlackFile,
                client: AsyncWebClient) -> None:
        async def work() -> None:
            actor = await self.actors.resolve(str(body.get("team_id") or ""), user, "")
            view: View | None = require_publisher(actor)
            if view is None:
                try:
                    data = await fetch_slack_file(self.core, file, str(client.token or ""))
                except ServiceError as exc:
                    view = Error(f"{file.name}: {exc}", "send the scheduler's CSV export of the published schedule")
                else:
                    view = await import_file(self.core, actor, file.name, data)
            text, blocks = render.message(view)
            await client.chat_postMessage(channel=channel, text=text, blocks=blocks)

        if not self._later(work, "schedule upload"):
            log.warning("a schedule upload was not taken: the queue is full")

    # --- buttons ------------------------------------------------------------------------------
    async def on_link(self, ack: AsyncAck) -> None:
        """URL buttons still send an interaction; nothing to do but acknowledge it."""
        await ack()

    async def on_action(
        self, ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], client: AsyncWebClient
    ) -> None:
        await ack()
        origin = Origin.from_body(body)
        try:
            # A button carries its value; a select (the staff card's picker) its chosen option's.
            raw: Any = action.get("value") if "value" in action else (action.get("selected_option") or {}).get("value")
            if action.get("type") == "plain_text_input":  # a text box's Enter: its block carries the action
                raw = input_action(str(action.get("block_id") or ""), str(action.get("value") or ""))
                if raw is None:
                    raise ParseError("this box's data is not valid; open the card again", "today")
            typed: Action = decode(str(action.get("action_id", "")).removeprefix(render.ACTION_PREFIX), raw)
        except ParseError as exc:
            bad = Error(exc.message, exc.example)
            self._later(lambda: self.respond(origin, bad, client, replace=False), "button error")
            return
        trigger = body.get("trigger_id")

        async def work() -> None:
            actor = await self._actor(body)
            view = await handle(self.core, actor, typed)
            if isinstance(typed, OpenReschedule) and isinstance(view, RescheduleForm) and trigger:
                meta = {"action": {"a": view.appointment_id, "v": view.version}, "origin": origin.to_dict()}
                await client.views_open(
                    trigger_id=trigger, view=render.modal(view, json.dumps(meta, separators=(",", ":")))
                )
                return
            await self.respond(origin, view, client, replace=not isinstance(view, Error))

        queue = self.modals if isinstance(typed, OpenReschedule) and trigger else None
        if not self._later(work, "button", origin, client, queue):
            busy = Error(BUSY_BUTTON, kind="unavailable")
            await self.respond(origin, busy, client, replace=False)

    # --- the reschedule modal -----------------------------------------------------------------
    async def on_closed(self, ack: AsyncAck) -> None:
        await ack()

    async def on_submit(
        self, ack: AsyncAck, body: dict[str, Any], view: dict[str, Any], client: AsyncWebClient
    ) -> None:
        try:
            submit, origin = _read_submit(view)
        except ParseError as exc:
            await ack(response_action="errors", errors={"time": exc.message})
            return
        if not self.may_submit():
            # Too much queued, or too many moves under way, to finish this in time if it is slow: the
            # form stays open, saying so, and nothing has changed (a "still working" modal would wait
            # behind the queue, and every move under way holds a database connection).
            await ack(response_action="errors", errors={"time": BUSY_SUBMIT})
            return
        task = asyncio.ensure_future(self._submit(body, submit))
        self._submitting += 1
        task.add_done_callback(self._submitted)
        try:
            budget = self.submit_budget
            if budget is not None and self.busy():
                budget = min(budget, SUBMIT_BUDGET_BUSY)
            result = await asyncio.wait_for(asyncio.shield(task), budget)
        except TimeoutError:
            await ack(response_action="update", view=render.working_modal("Still working on it…"))
            view_id = view.get("id")

            async def finish() -> None:
                done = await task
                await client.views_update(view_id=view_id, view=render.result_modal(done))
                if not isinstance(done, (Error, RescheduleForm)):
                    await self.respond(origin, done, client, replace=True)

            if not self._later(finish, "modal", origin, client, force=True):  # the person was told to wait
                task.cancel()
            return
        if isinstance(result, RescheduleForm) and result.errors:
            await ack(response_action="errors", errors=_field_errors(result))
            return
        if isinstance(result, Error):
            await ack(response_action="errors", errors={"time": result.message[:150]})
            return
        await ack(response_action="clear")
        self._later(lambda: self.respond(origin, result, client, replace=True), "modal answer")

    def may_submit(self) -> bool:
        """Whether a modal submit is taken now: the answers' queue admits work and fewer than
        SUBMITS_AT_ONCE submits are under way."""
        return self._submitting < SUBMITS_AT_ONCE and self.background.admits()

    def _submitted(self, _task: asyncio.Future[View]) -> None:
        self._submitting -= 1

    async def _submit(self, body: dict[str, Any], submit: SubmitReschedule) -> View:
        actor = await self._actor(body)
        return await handle(self.core, actor, submit)


_BUSY_COMMAND_ACK = json.dumps({"text": BUSY_COMMAND, "response_type": "ephemeral"}).encode()
_BUSY_SUBMIT_ACK = json.dumps({"response_action": "errors", "errors": {"time": BUSY_SUBMIT}}).encode()


def _field_errors(form: RescheduleForm) -> dict[str, str]:
    """Slack shows errors under input blocks, keyed by block id; free slots go with the time."""
    errors = {("time" if k in ("", "time") else k): v for k, v in form.errors.items()}
    if form.suggestions and "time" in errors:
        errors["time"] += ". Next free: " + ", ".join(label for _, label in form.suggestions)
    if "practitioner" in errors and not form.practitioners:
        errors["time"] = errors.pop("practitioner")
    return {k: v[:150] for k, v in errors.items()}


def _read_submit(view: dict[str, Any]) -> tuple[SubmitReschedule, Origin]:
    """The modal's values and where it was opened from; ParseError if anything is off."""
    try:
        meta = json.loads(view.get("private_metadata") or "{}")
        values = view["state"]["values"]
        base = decode("reschedule", meta.get("action"))
    except (ValueError, KeyError, TypeError, AttributeError):
        raise ParseError("this form is out of date; close it and press Reschedule again", "today") from None
    assert isinstance(base, OpenReschedule)
    day_raw = (values.get("date", {}).get("value") or {}).get("selected_date")
    time_raw = (values.get("time", {}).get("value") or {}).get("selected_time")
    pick = ((values.get("practitioner", {}).get("value") or {}).get("selected_option") or {}).get("value")
    try:
        day = date.fromisoformat(day_raw) if day_raw else None
    except ValueError:
        raise ParseError("pick a date from the calendar", "today") from None
    checked = decode(
        "reschedule_submit",
        {
            "a": base.appointment_id,
            "v": base.version,
            "d": day.isoformat() if day else None,
            "t": time_raw,
            "p": pick,
        },
    )
    assert isinstance(checked, SubmitReschedule)
    origin = meta.get("origin") or {}
    return checked, Origin(origin.get("r"), origin.get("c"), origin.get("t"), bool(origin.get("e", True)))
