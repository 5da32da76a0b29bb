"""Proactive Teams messages: conversation references in, DMs out.

A personal (1:1) reference is continued with `adapter.continue_conversation` and the bot's app id.
A person we only know from a channel or group chat gets a 1:1 chat created first
(`POST /v3/conversations`, which Teams answers with the existing personal chat), and that
personal reference is kept for next time.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from botbuilder.core import MessageFactory, TurnContext
from botbuilder.integration.aiohttp import CloudAdapter
from botbuilder.schema import (
    Activity,
    Attachment,
    ChannelAccount,
    ConversationParameters,
    ConversationReference,
)
from msrest.exceptions import ClientRequestError, HttpOperationError

from bot.teams.auth import TokenError
from bot.teams.outbound import model_json
from sync.runtime.notifier import DeliveryError

__all__ = ["ProactiveSender", "card_activity", "reference_of"]

log = logging.getLogger("clinicbot.teams.proactive")

CARD = "application/vnd.microsoft.card.adaptive"


class CardAttachment(Attachment):  # type: ignore[misc]
    """An Adaptive Card attachment whose deep copy shares the card itself.

    TurnContext deep-copies every activity it sends. A card is built for its message and never
    changed afterwards, so copying it (a large nested dict, on every turn) is pure cost.
    """

    def __deepcopy__(self, memo: dict[int, Any]) -> CardAttachment:
        return copy.copy(self)


def card_activity(card: dict[str, Any], summary: str = "") -> Activity:
    """A message carrying one Adaptive Card (summary is the notification preview text)."""
    activity = MessageFactory.attachment(CardAttachment(content_type=CARD, content=card))
    if summary:
        activity.summary = summary[:200]
    return activity


def reference_of(activity: Activity) -> dict[str, Any]:
    """The activity's conversation reference as JSON, for ChatIdentity.conversation_ref."""
    ref = TurnContext.get_conversation_reference(activity)
    data = model_json(ref)  # ref.serialize() builds msrest's Serializer (every model's class) per call
    tenant = (activity.conversation.tenant_id if activity.conversation else None) or _tenant(activity)
    if tenant:
        data.setdefault("conversation", {})["tenantId"] = tenant
    return data


def _tenant(activity: Activity) -> str | None:
    data = activity.channel_data or {}
    tenant = data.get("tenant") if isinstance(data, dict) else None
    return tenant.get("id") if isinstance(tenant, dict) else None


def is_personal(ref: dict[str, Any]) -> bool:
    return (ref.get("conversation") or {}).get("conversationType") == "personal"


class ProactiveSender:
    """Sends an activity to a stored reference; returns the personal reference it used."""

    def __init__(self, adapter: CloudAdapter, app_id: str) -> None:
        self.adapter = adapter
        self.app_id = app_id

    async def send(self, ref: dict[str, Any], activity: Activity) -> dict[str, Any]:
        """Deliver `activity` as a DM to the person in `ref` (raises DeliveryError)."""
        failures: list[Exception] = []

        async def deliver(context: TurnContext) -> None:
            # The adapter hands a failing callback to on_turn_error and returns normally; keep it.
            try:
                await context.send_activity(activity)
            except Exception as exc:
                failures.append(exc)

        try:
            reference = ConversationReference().deserialize(ref)
            if is_personal(ref) or not (ref.get("user") or {}).get("id"):
                await self.adapter.continue_conversation(reference, deliver, self.app_id)
                used = ref
            else:
                used = await self._create_personal(reference, ref, deliver)
            if failures:
                raise failures[0]
            return used
        except HttpOperationError as exc:
            response = exc.response
            status = int(getattr(response, "status_code", None) or getattr(response, "status", 0) or 0)
            # 403: the user blocked or uninstalled the bot; 404: the conversation is gone.
            raise DeliveryError(
                f"Teams refused the message (HTTP {status})", retryable=status == 429 or status >= 500
            ) from None
        except (ClientRequestError, OSError) as exc:
            raise DeliveryError(f"Teams is unreachable: {type(exc).__name__}") from None
        except TokenError as exc:
            raise DeliveryError(str(exc), retryable=False) from None

    async def _create_personal(
        self,
        reference: ConversationReference,
        ref: dict[str, Any],
        deliver: Callable[[TurnContext], Awaitable[None]],
    ) -> dict[str, Any]:
        tenant = (ref.get("conversation") or {}).get("tenantId")
        params = ConversationParameters(
            is_group=False,
            bot=reference.bot,
            members=[ChannelAccount(id=reference.user.id)],
            tenant_id=tenant,
            channel_data={"tenant": {"id": tenant}} if tenant else None,
        )
        created: dict[str, str] = {}

        async def first_turn(context: TurnContext) -> None:
            created["id"] = context.activity.conversation.id
            await deliver(context)

        await self.adapter.create_conversation(
            self.app_id,
            first_turn,
            params,
            channel_id=reference.channel_id or "msteams",
            service_url=reference.service_url,
            audience=None,
        )
        personal = {k: v for k, v in ref.items() if k != "activityId"}
        personal["conversation"] = {
            "id": created["id"],
            "conversationType": "personal",
            "isGroup": False,
            **({"tenantId": tenant} if tenant else {}),
        }
        return personal
