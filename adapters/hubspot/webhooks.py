"""HubSpot's webhooks, checked with the v3 signature before the body is read.

`X-HubSpot-Signature-v3` is base64(HMAC-SHA256(app client secret, method + URI + body +
X-HubSpot-Request-Timestamp)), the timestamp in milliseconds; a timestamp more than five minutes
from now is refused, and within those minutes the replay memory refuses an event id seen before.
The URI is the address HubSpot called: the channel's webhook URL (the one set in the app's
webhook settings), with the delivery's query if it had one.
A delivery (a JSON list of events: eventId, portalId, subscriptionType, objectId ...) only says to
look: events of another account (portalId) are ignored, the rest ask for a sync, which reads the
meetings from the API.

HubSpot's webhook subscriptions belong to the app (set once in its developer settings, pointing at
`<public URL>/webhooks/hubspot/<connection>`), not made per account through the API; so a channel
here is clinicbot's record that the connection listens, keyed by the account, with the secret
that signs its deliveries (the app's client secret, stored encrypted like every channel secret).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

from adapters.hubspot.bookings import HubSpotMeetings
from adapters.hubspot.client import PROVIDER
from adapters.hubspot.settings import hubspot_settings
from adapters.kit.webhooks import posted_channels
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

__all__ = ["SIGNATURE_HEADER", "TIMESTAMP_HEADER", "HubSpotChannels", "HubSpotWebhooks", "sign", "verify_signature"]

log = logging.getLogger("clinicbot.hubspot")
SIGNATURE_HEADER = "x-hubspot-signature-v3"
TIMESTAMP_HEADER = "x-hubspot-request-timestamp"
#: HubSpot's own rule: reject a request whose timestamp is older than five minutes.
TOLERANCE_MS = 5 * 60 * 1000
#: How long a channel stands before the renewal job looks at it again (nothing to renew at HubSpot).
CHECK_EVERY = timedelta(days=7)


def sign(method: str, uri: str, body: bytes, timestamp: str, secret: str) -> str:
    """The `X-HubSpot-Signature-v3` value HubSpot sends for this request."""
    message = method.encode("utf-8") + uri.encode("utf-8") + body + timestamp.encode("utf-8")
    return base64.b64encode(hmac.new(secret.encode("utf-8"), message, hashlib.sha256).digest()).decode("ascii")


def verify_signature(method: str, uri: str, body: bytes, timestamp: str, header: str, secret: str,
                     now: datetime) -> bool:
    """True when `header` signs this request under `secret` and `timestamp` (ms) is within five minutes."""
    if not secret:
        raise ValueError("a HubSpot signature check needs the app's client secret")
    if not (timestamp.isascii() and timestamp.isdigit()) or len(timestamp) > 15 or not header:
        return False
    if abs(now.timestamp() * 1000 - int(timestamp)) > TOLERANCE_MS:
        return False
    expected = sign(method, uri, body, timestamp, secret)
    return hmac.compare_digest(expected.encode("ascii"), header.strip().encode("ascii", "replace"))


def _uri(channel: Channel, request: WebhookRequest) -> str:
    return channel.resource_id + (f"?{urlencode(dict(request.query))}" if request.query else "")


class HubSpotWebhooks:
    """HubSpot's signed-webhook capability."""

    max_body = 512 * 1024

    async def handle(self, request: WebhookRequest, desk: ChannelDesk) -> WebhookAnswer:
        channels = await posted_channels(request, desk)
        if isinstance(channels, WebhookAnswer):
            return channels
        header, timestamp = request.headers.get(SIGNATURE_HEADER, ""), request.headers.get(TIMESTAMP_HEADER, "")
        now = desk.now()
        channel = next((c for c in channels if c.secret and verify_signature(
            request.method, _uri(c, request), request.body, timestamp, header, c.secret, now)), None)
        if channel is None:
            log.warning("hubspot webhook with a bad or stale signature", extra={"connection": desk.connection_id})
            return WebhookAnswer(401, "bad or stale signature")
        try:
            events = json.loads(request.body)
            if not isinstance(events, list) or not all(isinstance(e, dict) and "eventId" in e for e in events):
                raise ValueError
        except ValueError:
            return WebhookAnswer(400, "not a HubSpot event list")
        portal = channel.remote_id.split("#", 1)[0]
        fresh = [e for e in events if str(e.get("portalId")) == portal]
        new = [e for e in fresh if await desk.first_delivery(f"event:{e['eventId']}")]
        if fresh and not new:
            return WebhookAnswer(401, "replayed delivery")
        if new:
            await desk.sync(channel, str(new[0].get("subscriptionType") or "hubspot.event"))
        return WebhookAnswer(200, "ok")


class HubSpotChannels:
    """A record per booking calendar that its account's deliveries are expected (see the module docstring)."""

    renew_margin = timedelta(days=1)

    def api_url(self, host: HostSettings) -> str:
        return hubspot_settings(host).hubspot_api_url

    async def open(self, provider: CalendarProvider, url: str, current: Channel | None) -> ChannelOpened:
        if not isinstance(provider, BookingCalendar) or not isinstance(provider.source, HubSpotMeetings):
            raise Refused("hubspot channels need a HubSpot booking calendar", provider=PROVIDER)
        source = provider.source
        if not source.app_secret or not source.portal_id:
            raise Refused("hubspot: webhooks need the app's client secret and the account id (polling only)",
                          provider=PROVIDER)
        channel = Channel(f"{source.portal_id}#{provider.staff_id}", url, source.app_secret,
                          datetime.now(UTC) + CHECK_EVERY, provider.staff_id)
        same = current is not None and current.remote_id == channel.remote_id and current.resource_id == url \
            and current.secret == channel.secret  # a rotated client secret makes a new record
        return ChannelOpened(channel, renewed=current is not None, in_place=same,
                             retire=None if same else current)

    async def stop(self, provider: CalendarProvider, channel: Channel) -> None:
        """Nothing to stop at HubSpot: the app's subscriptions stay; the record goes."""
        return
