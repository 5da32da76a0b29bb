"""What a booking platform's signed webhooks check first, before their own signature: the delivery is
a POST, and the connection it is addressed to has channels (a subscription with its secret) to check it
against."""

from __future__ import annotations

from sync.contract.integration import Channel, ChannelDesk, WebhookAnswer, WebhookRequest

__all__ = ["posted_channels"]


async def posted_channels(request: WebhookRequest, desk: ChannelDesk) -> list[Channel] | WebhookAnswer:
    """The connection's active channels; the answer instead to anything but a POST (405) or to an
    address whose connection has none (404)."""
    if request.method != "POST":
        return WebhookAnswer(405, "POST only")
    channels = await desk.channels()
    if not channels:
        return WebhookAnswer(404, "unknown connection")
    return channels
