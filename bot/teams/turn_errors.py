"""What the user sees when a Teams turn fails unexpectedly: a short card, never a stack trace."""

from __future__ import annotations

import logging

from botbuilder.core import InvokeResponse, TurnContext
from botbuilder.schema import Activity, ActivityTypes

from bot.teams import cards
from bot.teams.proactive import card_activity

__all__ = ["on_turn_error"]

log = logging.getLogger("clinicbot.teams")

SORRY = "Something went wrong on clinicbot's side and nothing was changed. Please try again in a minute."


async def on_turn_error(context: TurnContext, error: Exception) -> None:
    """Log the failure (type only: messages may carry patient data) and tell the user."""
    log.error(
        "Teams turn failed",
        extra={"error": type(error).__name__, "activity_type": context.activity.type},
        exc_info=error,
    )
    sorry = cards.card([cards.text(SORRY, color="Attention")])
    try:
        if context.activity.type == ActivityTypes.invoke:
            # Answer the card action with the apology card in place of a bare HTTP error.
            body = {"statusCode": 200, "type": cards.CARD_CONTENT_TYPE, "value": sorry}
            await context.send_activity(
                Activity(type=ActivityTypes.invoke_response, value=InvokeResponse(status=200, body=body))
            )
        else:
            await context.send_activity(card_activity(sorry))
    except Exception:
        log.warning("could not send the error card", exc_info=True)
