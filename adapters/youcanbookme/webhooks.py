"""YouCanBookMe's webhooks carry no signature: the address itself is the secret.

Each connection gets a random path token of 256 bits at connect (kept encrypted with the
credentials, shown once); the webhook address set in YouCanBookMe's notifications ends in it:
`/webhooks/youcanbookme/<connection id>/<token>`. A delivery to a wrong token gets 404 and changes
nothing. One to the right token is still not believed: its body (which YouCanBookMe lets the account
shape with templates) is never read as data; the delivery only queues a sync, which reads the bookings
through the API with the account's own key. Repeats of one body are answered 200 without a second sync.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from datetime import UTC, datetime, timedelta

from adapters.youcanbookme.client import PROVIDER
from adapters.youcanbookme.settings import youcanbookme_settings
from sync.contract import CalendarProvider, Refused
from sync.contract.booking import BookingCalendar
from sync.contract.integration import (
    Channel,
    ChannelDesk,
    ChannelOpened,
    HostSettings,
    WebhookAnswer,
    WebhookRequest,
)

__all__ = ["PathTokenChannels", "PathTokenWebhooks"]

log = logging.getLogger("clinicbot.youcanbookme")


class PathTokenWebhooks:
    """The webhook capability of an unsigned platform: the right path token asks for a sync, nothing more."""

    max_body = 64 * 1024

    async def handle(self, request: WebhookRequest, desk: ChannelDesk) -> WebhookAnswer:
        if request.method != "POST":
            return WebhookAnswer(405, "POST only")
        token = request.path_token.encode("ascii", "replace")
        channels = await desk.channels() if token else []
        channel = next((c for c in channels
                        if c.secret and hmac.compare_digest(c.secret.encode("ascii", "replace"), token)), None)
        if channel is None:
            log.warning("youcanbookme webhook to an unknown address", extra={"connection": desk.connection_id})
            return WebhookAnswer(404, "unknown webhook")
        if not await desk.first_delivery("sha256:" + hashlib.sha256(request.body).hexdigest()):
            return WebhookAnswer(200, "already seen")
        await desk.sync(channel, "booking")
        return WebhookAnswer(200, "ok")


class PathTokenChannels:
    """Each booking calendar's channel holds the connection's path token (nothing is made at YouCanBookMe)."""

    renew_margin = timedelta(days=1)

    def api_url(self, host: HostSettings) -> str:
        return youcanbookme_settings(host).youcanbookme_api_url

    async def open(self, provider: CalendarProvider, url: str, current: Channel | None) -> ChannelOpened:
        if not isinstance(provider, BookingCalendar):
            raise Refused("youcanbookme channels need a YouCanBookMe booking calendar", provider=PROVIDER)
        token = str(getattr(provider.source, "webhook_token", "") or "")
        if not token:
            raise Refused("youcanbookme: this connection has no webhook token (polling only); connect it again "
                          "to get one", provider=PROVIDER)
        expires = datetime.now(UTC) + timedelta(days=30)
        remote_id = f"youcanbookme-{hashlib.sha256((url + provider.staff_id).encode()).hexdigest()[:24]}"
        channel = Channel(remote_id, url, token, expires, provider.staff_id)
        if current is not None and current.remote_id == remote_id and current.secret == token:
            return ChannelOpened(channel, renewed=True, in_place=True)
        return ChannelOpened(channel, renewed=current is not None, retire=current)

    async def stop(self, provider: CalendarProvider, channel: Channel) -> None:
        """Nothing to stop at YouCanBookMe: the webhook is the account's notification setting."""
        return None
