"""The Teams bot: activities in, shared commands run, Adaptive Cards out.

Messages (1:1, group chat, channel with the @mention stripped) go through the shared grammar;
card buttons arrive as `adaptiveCard/action` invokes (Action.Execute) and are answered with the
refreshed card, or as a message with a `value` (the Action.Submit fallback) and then the card is
updated in place. Installs store conversation references for proactive messages.
"""

from __future__ import annotations

import html
import logging
import re
from datetime import date
from typing import Any, ClassVar, Literal

from botbuilder.core import ActivityHandler, InvokeResponse, TurnContext
from botbuilder.schema import Activity, AdaptiveCardInvokeResponse, AdaptiveCardInvokeValue, ChannelAccount

from bot.commands import Action, Actor, ParseError, decode, handle, parse
from bot.commands.actions import (
    ACTION_IDS,
    AskCancel,
    CancelConfirmed,
    OpenReschedule,
    PickSlot,
    ShowDetails,
    SubmitReschedule,
)
from bot.commands.actor_cache import ActorCache
from bot.commands.answers import AnswerCache, agenda_audience, agenda_days, until_midnight
from bot.commands.grammar import Command, Connect, ShowAgenda, ShowAppointment
from bot.teams import cards
from bot.teams.consent_flow import ConsentFlow
from bot.teams.outbound import invoke_response
from bot.teams.proactive import ProactiveSender, card_activity, is_personal, reference_of
from bot.teams.uploads import file_attachment, import_upload
from bot.views import Agenda, AppointmentDetail, Error, View
from sync.integrations.registry import needs_tenant_consent
from sync.notify import recipients
from sync.runtime.core import Core
from sync.runtime.notifier import DeliveryError

__all__ = ["TeamsBot", "command_text"]

log = logging.getLogger("clinicbot.teams")

PLATFORM: Literal["teams"] = "teams"
_TAGS = re.compile(r"<[^>]+>")
_SPACE = re.compile(r"\s+")
#: Slack's slash command typed out of habit: Teams has none, so it is dropped.
_SLASH_CLINIC = re.compile(r"^/clinic(?:\s+|$)", re.IGNORECASE)


def command_text(activity: Activity) -> str:
    """The command typed: the bot's own @mention and a leading `/clinic` removed, people's mentions
    as `@!<id>`, no markup.

    Same effect as TurnContext.remove_recipient_mention, but literal: botbuilder feeds the
    mention's name to `re.sub` as a pattern, which misfires on names such as "clinicbot (test)".
    """
    value = activity.text or ""
    bot_id = activity.recipient.id if activity.recipient else None
    for mention in TurnContext.get_mentions(activity):
        props = mention.additional_properties or {}
        who = props.get("mentioned") or {}
        shown = props.get("text") or f"<at>{who.get('name', '')}</at>"
        value = value.replace(shown, " " if who.get("id") == bot_id else f" @!{who.get('id', '')} ")
    value = html.unescape(_TAGS.sub(" ", value))
    return _SLASH_CLINIC.sub("", _SPACE.sub(" ", value).strip())


def _shown_days(view: View) -> tuple[date, ...]:
    """The UTC dates an agenda shows appointments of (what its cache entry depends on)."""
    return agenda_days(view.day, view.timezone) if isinstance(view, Agenda) else ()


def _tenant(activity: Activity) -> str:
    tenant = activity.conversation.tenant_id if activity.conversation else None
    data = activity.channel_data if isinstance(activity.channel_data, dict) else {}
    tenant = tenant or (data.get("tenant") or {}).get("id")
    # Without authentication (local testing) activities may carry no tenant at all.
    return str(tenant or "no-tenant")


#: Universal Actions' answer that shows the presser a message and leaves the card unchanged.
MESSAGE_CONTENT_TYPE = "application/vnd.microsoft.activity.message"
ACTION_IDS_OF = {cls: name for name, cls in ACTION_IDS.items()}
#: Buttons whose answer is one person's view (details, a form, a confirmation): in a channel or
#: group chat it goes to the presser privately, never over the card everyone shares.
_PRIVATE_VERBS = frozenset(
    ACTION_IDS_OF[cls] for cls in (ShowDetails, OpenReschedule, SubmitReschedule, PickSlot, AskCancel, CancelConfirmed)
)


class _MessageInvokeResponse(AdaptiveCardInvokeResponse):
    """An adaptiveCard/action answer whose value is a message text (botbuilder types it as a card)."""

    _attribute_map: ClassVar[dict[str, dict[str, str]]] = {
        **AdaptiveCardInvokeResponse._attribute_map,
        "value": {"key": "value", "type": "str"},
    }


def _personal_turn(turn_context: TurnContext) -> bool:
    conversation = turn_context.activity.conversation
    return conversation is not None and conversation.conversation_type == "personal"


def _answered_privately(turn_context: TurnContext, verb: str) -> bool:
    return verb in _PRIVATE_VERBS and not _personal_turn(turn_context)


def _refresh_target(view: View, command: Command | Action | None, typed: str) -> dict[str, Any] | None:
    """What a shared card re-runs for each viewer (read-only commands only)."""
    if isinstance(command, ShowAgenda) and typed:
        return {"cmd": typed}
    if isinstance(view, AppointmentDetail):
        return {"cmd": f"appointment {view.item.ref}"}
    return None


class TeamsBot(ActivityHandler):
    """ActivityHandler wiring Teams activities to the shared command layer."""

    def __init__(self, core: Core, sender: ProactiveSender, consent: ConsentFlow) -> None:
        self.core = core
        self.sender = sender
        self.consent = consent
        self.actors = ActorCache(core, "teams")
        # Role changes made through any front end in this process clear it (bot/commands/handlers.py).
        core.services.actor_caches.append(self.actors)
        #: Agendas once built, shared by everyone who sees the same (bot/commands/answers.py).
        self.answers: AnswerCache[View] = AnswerCache(core.store)
        self._stored_refs: dict[int, tuple[Any, Any]] = {}

    # --- who --------------------------------------------------------------------------------
    async def _actor(self, context: TurnContext, person: ChannelAccount | None = None) -> Actor:
        activity = context.activity
        who = person or activity.from_property
        return await self.actors.resolve(_tenant(activity), who.id, who.name or "")

    async def _remember(self, context: TurnContext, actor: Actor) -> None:
        activity = context.activity
        # A person's reference rarely changes between messages: skip the write when this process
        # already stored exactly this conversation and service URL for them.
        key = activity.conversation.id, activity.service_url
        if self._stored_refs.get(actor.chat_identity_id) == key:
            return
        ref = reference_of(activity)
        await recipients.keep_reference(self.core, actor.chat_identity_id, ref)
        if len(self._stored_refs) >= 10_000:
            self._stored_refs.clear()
        self._stored_refs[actor.chat_identity_id] = key

    # --- messages ---------------------------------------------------------------------------
    async def on_message_activity(self, turn_context: TurnContext) -> None:
        activity = turn_context.activity
        actor = await self._actor(turn_context)
        await self._remember(turn_context, actor)
        if (
            isinstance(activity.value, dict)
            and activity.value.get("verb")
            and not (activity.text or "").strip()
        ):
            await self._submit_fallback(turn_context, actor, activity.value)
            return
        typed = command_text(activity)
        upload = file_attachment(activity.attachments)
        if upload is not None and not typed.strip():
            # A schedule export sent in a personal chat (manifest supportsFiles): import and publish it.
            view = await import_upload(self.core, actor, upload)
            await turn_context.send_activity(card_activity(cards.render(view)))
            return
        try:
            command: Command = parse(typed or "help")
        except ParseError as exc:
            await turn_context.send_activity(card_activity(cards.render(Error(exc.message, exc.example))))
            return
        if (
            isinstance(command, Connect)
            and needs_tenant_consent(command.provider)
            and not await self.consent.granted(actor.practice_id)
        ):
            await self._request_consent(turn_context, actor)
            return
        view = await self._answer(actor, command)
        await turn_context.send_activity(
            card_activity(await self._card(turn_context, actor, view, command, typed))
        )

    async def _answer(self, actor: Actor, command: Command) -> View:
        """The command's view; an agenda from the answer cache while it is good (one shared build)."""
        if not isinstance(command, ShowAgenda):
            return await handle(self.core, actor, command)
        key = (agenda_audience(actor), command)
        kept = self.answers.get(key)
        if kept is not None:
            return kept

        async def build() -> tuple[View, float]:
            view = await handle(self.core, actor, command)
            # Errors (not linked, no such practitioner) are not kept: the next try asks the database.
            return view, until_midnight(self.core.clock(), view.timezone) if isinstance(view, Agenda) else 0.0

        return await self.answers.build(key, build, scope=actor.practice_id, days=_shown_days)

    async def _request_consent(self, turn_context: TurnContext, actor: Actor) -> None:
        reply, dms = await self.consent.request(actor)
        await turn_context.send_activity(card_activity(reply, "Admin consent"))
        for admin, card in dms:
            if admin.conversation_ref:
                try:
                    await self.sender.send(
                        admin.conversation_ref, card_activity(card, "Admin consent requested")
                    )
                except Exception as exc:  # one unreachable admin must not stop the others
                    log.warning("consent request DM failed", extra={"error": type(exc).__name__})

    async def _submit_fallback(self, turn_context: TurnContext, actor: Actor, data: dict[str, Any]) -> None:
        verb = str(data.get("verb"))
        if _answered_privately(turn_context, verb):
            card = await self._run_action(turn_context, actor, verb, data, shared=False)
            await self._answer_privately(turn_context, actor, card)
            return
        card = await self._run_action(turn_context, actor, verb, data)
        reply = card_activity(card)
        if turn_context.activity.reply_to_id:
            reply.id = turn_context.activity.reply_to_id
            await turn_context.update_activity(reply)
        else:
            await turn_context.send_activity(reply)

    # --- Universal Actions ------------------------------------------------------------------
    @staticmethod
    def _create_invoke_response(body: object = None) -> InvokeResponse:
        """ActivityHandler's invoke answer (200 and the serialized body), built without msrest's
        per-value work and shared, not deep-copied, when botbuilder sends it (bot.teams.outbound)."""
        return invoke_response(body)

    async def on_adaptive_card_invoke(
        self, turn_context: TurnContext, invoke_value: AdaptiveCardInvokeValue
    ) -> AdaptiveCardInvokeResponse:
        action = invoke_value.action if isinstance(invoke_value.action, dict) else {}
        raw = action.get("data")
        data: dict[str, Any] = raw if isinstance(raw, dict) else {}
        actor = await self._actor(turn_context)
        verb = str(action.get("verb") or "")
        if _answered_privately(turn_context, verb):
            card = await self._run_action(turn_context, actor, verb, data, shared=False)
            said = await self._answer_privately(turn_context, actor, card)
            # A message answer leaves the shared card as it is, for everyone.
            return _MessageInvokeResponse(status_code=200, type=MESSAGE_CONTENT_TYPE, value=said)
        card = await self._run_action(turn_context, actor, verb, data)
        return AdaptiveCardInvokeResponse(status_code=200, type=cards.CARD_CONTENT_TYPE, value=card)

    async def _answer_privately(self, turn_context: TurnContext, actor: Actor, card: dict[str, Any]) -> str:
        """Send a button's answer to the presser's 1:1 chat (opened if need be); what to tell them."""
        ref = reference_of(turn_context.activity)
        stored = await recipients.conversation_ref_of(self.core, actor.chat_identity_id)
        target = stored if stored and is_personal(stored) else ref
        try:
            used = await self.sender.send(target, card_activity(card))
        except DeliveryError as exc:
            log.warning("could not answer a channel button privately", extra={"error": str(exc)})
            return "I could not reach you in a private chat; message me directly and try again."
        if used != stored:
            await recipients.keep_reference(self.core, actor.chat_identity_id, used)
        return "I sent you the answer in our private chat, so this card stays the same for everyone."

    async def _run_action(
        self, turn_context: TurnContext, actor: Actor, verb: str, data: dict[str, Any], *, shared: bool | None = None
    ) -> dict[str, Any]:
        values = {k: v for k, v in data.items() if k != "verb"}
        if verb == cards.REFRESH_VERB:
            return await self._refresh(turn_context, actor, str(values.get("cmd", "")))
        if verb == "consent_retry":
            reply, _ = await self.consent.request(actor)
            return reply
        try:
            action = decode(verb, values)
        except ParseError as exc:
            return cards.render(Error(exc.message, exc.example))
        view = await handle(self.core, actor, action)
        return await self._card(turn_context, actor, view, action, "", shared=shared)

    async def _refresh(self, turn_context: TurnContext, actor: Actor, typed: str) -> dict[str, Any]:
        try:
            command = parse(typed)
        except ParseError as exc:
            return cards.render(Error(exc.message, exc.example))
        if not isinstance(command, ShowAgenda | ShowAppointment):
            return cards.render(Error("this card cannot be refreshed", "today"))
        view = await self._answer(actor, command)
        return await self._card(turn_context, actor, view, command, typed)

    async def _card(
        self,
        turn_context: TurnContext,
        actor: Actor,
        view: View,
        command: Command | Action | None,
        typed: str,
        *,
        shared: bool | None = None,
    ) -> dict[str, Any]:
        """The card for `view`; one posted to a shared conversation refreshes per viewer."""
        if shared is None:
            shared = not _personal_turn(turn_context)
        target = _refresh_target(view, command, typed) if shared else None
        if target is None:
            return cards.render(view)
        staff = await recipients.staff_ids(self.core, actor.practice_id, PLATFORM)
        return cards.render(view, refresh=target, user_ids=[actor.user_id, *staff])

    # --- installs ---------------------------------------------------------------------------
    async def on_installation_update_add(self, turn_context: TurnContext) -> None:
        await self._installed(turn_context)

    async def on_members_added_activity(
        self, members_added: list[ChannelAccount], turn_context: TurnContext
    ) -> None:
        bot_id = turn_context.activity.recipient.id if turn_context.activity.recipient else None
        if bot_id and any(m.id == bot_id for m in members_added):
            await self._installed(turn_context)
            return
        for member in members_added:  # people joining a chat the bot is in: remember them for DMs
            if not member.id:
                continue  # nobody to remember (a garbled update): the others still are
            actor = await self._actor(turn_context, member)
            ref = reference_of(turn_context.activity)
            ref["user"] = {"id": member.id, "name": member.name}
            await recipients.keep_reference(self.core, actor.chat_identity_id, ref)

    async def _installed(self, turn_context: TurnContext) -> None:
        """Store the conversation and greet it with the help card, once per conversation.

        Teams announces one install twice, at the same moment (installationUpdate and a
        conversationUpdate adding the bot): only the turn that stores the conversation first greets.
        """
        actor = await self._actor(turn_context)
        ref = reference_of(turn_context.activity)
        channel: recipients.Channel | None = None
        if not is_personal(ref):
            conversation = turn_context.activity.conversation
            # Post to the channel itself: no person, and no thread (";messageid=...").
            channel_ref = {k: v for k, v in ref.items() if k not in ("user", "activityId")}
            channel_ref["conversation"] = {**ref["conversation"], "id": conversation.id.split(";")[0]}
            channel = recipients.Channel(
                _tenant(turn_context.activity), channel_ref["conversation"]["id"], conversation.name or "", channel_ref
            )
        new = await recipients.remember_install(
            self.core, actor.chat_identity_id, ref, actor.practice_id, PLATFORM, channel
        )
        log.info(
            "installed",
            extra={"conversation_type": (ref.get("conversation") or {}).get("conversationType"), "greeted": new},
        )
        if new:
            await turn_context.send_activity(
                card_activity(cards.render(await handle(self.core, actor, parse("help"))))
            )
