"""Slack direct messages for the ChatNotifier: conversations.open, then chat.postMessage.

The DM channel id is remembered on the ChatIdentity (conversation_ref = {"channel": "D..."}), so
conversations.open runs once per person. Slack errors become DeliveryError: rate limits and
Slack-side failures are retryable; a revoked token or an unknown user is not.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from bot.commands.identity import remember_conversation
from bot.slack import render
from bot.views import View
from sync.runtime.notifier import DeliveryError
from sync.services.identities import ChatPerson

if TYPE_CHECKING:
    from bot.slack.server import SlackRuntime

__all__ = ["SlackSender"]

_RETRYABLE = {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}


class SlackSender:
    def __init__(self, runtime: SlackRuntime) -> None:
        self.runtime = runtime

    async def _client(self, team_id: str) -> AsyncWebClient:
        if self.runtime.mode != "oauth":
            return self.runtime.api_client(self.runtime.settings.slack_bot_token)
        store = self.runtime.bolt.installation_store
        bot = await store.async_find_bot(enterprise_id=None, team_id=team_id) if store is not None else None
        if bot is None or not bot.bot_token:
            raise DeliveryError(f"clinicbot is not installed in Slack workspace {team_id}", retryable=False)
        return self.runtime.api_client(bot.bot_token)

    async def send(self, identity: ChatPerson, view: View) -> None:
        """DM `view` to the person; raises DeliveryError."""
        client = await self._client(identity.workspace_id)
        text, blocks = render.message(view)
        try:
            channel = (identity.conversation_ref or {}).get("channel")
            if not channel:
                opened = await client.conversations_open(users=identity.user_id)
                channel = opened["channel"]["id"]
                await remember_conversation(self.runtime.core, identity.id, {"channel": channel})
            await client.chat_postMessage(channel=channel, text=text, blocks=blocks)
        except SlackApiError as exc:
            code = str(exc.response.get("error", "")) if exc.response is not None else ""
            status = exc.response.status_code if exc.response is not None else 0
            raise DeliveryError(
                f"Slack refused the message: {code or status}",
                retryable=code in _RETRYABLE or status == 429 or status >= 500,
            ) from None
        except (SlackClientError, OSError, TimeoutError) as exc:
            raise DeliveryError(f"Slack unreachable: {type(exc).__name__}") from None
