"""SimplyBook.me's callbacks: unsigned, so a delivery is never data, only a reason to read the API.

SimplyBook posts to the callback URL set in its admin (Custom Features > API) on create, change and
cancel, a JSON body such as {"booking_id", "booking_hash", "company", "notification_type",
"webhook_timestamp"}. No signature scheme is documented (the `signature_algo` field hints at one that
could not be verified), so nothing in the body is believed: a delivery for this connection's company
with a booking id asks for a read of that one booking (`desk.sync_items`), and the read fetches it by
id with the company's own credentials (signed with md5(id + hash + secret key) where the public API's
key and secret are configured, see bookings.py). A forged delivery can therefore at most cause one
fetch that finds nothing; an id of another company, or a made-up hash, is not returned for this
company. Repeats of one delivery are remembered (persisted, bounded) and answered 200 without a
second read.

The callback URL is `/webhooks/simplybook/<connection id>`; each booking calendar's channel stores
the company login the deliveries must name. Nothing is created at SimplyBook: the admin sets the URL.
"""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import UTC, datetime, timedelta

from adapters.kit.webhooks import posted_channels
from adapters.simplybook.bookings import callback_ref
from adapters.simplybook.client import PROVIDER
from adapters.simplybook.settings import simplybook_settings
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

__all__ = ["BOOKING_NOTICES", "SimplyBookCallbacks", "SimplyBookChannels"]

log = logging.getLogger("clinicbot.simplybook")
#: Notification types that concern a booking; the others (new_client, create_invoice...) are acknowledged only.
BOOKING_NOTICES = frozenset({"create", "change", "cancel"})
HEX = frozenset("0123456789abcdefABCDEF")


class SimplyBookCallbacks:
    """SimplyBook's webhook capability: check the delivery names this company and a booking, then ask for a sync."""

    max_body = 8 * 1024

    async def handle(self, request: WebhookRequest, desk: ChannelDesk) -> WebhookAnswer:
        channels = await posted_channels(request, desk)
        if isinstance(channels, WebhookAnswer):
            return channels
        try:
            body = json.loads(request.body)
        except (ValueError, UnicodeDecodeError):
            return WebhookAnswer(400, "body is not JSON")
        if not isinstance(body, dict):
            return WebhookAnswer(400, "body is not a JSON object")
        company = str(body.get("company") or "").strip().lower()
        channel = next((c for c in channels if c.secret and c.secret.lower() == company), None)
        if channel is None:
            log.warning("simplybook callback for another company", extra={"connection": desk.connection_id})
            return WebhookAnswer(404, "not this connection's company")
        booking_id, kind = str(body.get("booking_id") or ""), str(body.get("notification_type") or "")
        booking_hash = str(body.get("booking_hash") or "")
        if not (booking_id.isascii() and booking_id.isdigit()) or len(booking_id) > 18 or not kind:
            return WebhookAnswer(400, "not a booking callback")
        if booking_hash and not (len(booking_hash) <= 64 and all(c in HEX for c in booking_hash)):
            return WebhookAnswer(400, "not a booking hash")
        if kind not in BOOKING_NOTICES:
            return WebhookAnswer(200, "ignored")
        key = f"booking:{booking_id}:{kind}:{str(body.get('webhook_timestamp') or '')[:20]}" \
            if body.get("webhook_timestamp") else "sha256:" + hashlib.sha256(request.body).hexdigest()
        if not await desk.first_delivery(key):
            return WebhookAnswer(200, "already seen")
        await desk.sync_items(channel, [callback_ref(booking_id, booking_hash.lower())], f"booking.{kind}")
        return WebhookAnswer(200, "ok")


class SimplyBookChannels:
    """Each booking calendar's channel carries the company login its callbacks must name."""

    renew_margin = timedelta(days=1)

    def api_url(self, host: HostSettings) -> str:
        return simplybook_settings(host).simplybook_api_url

    async def open(self, provider: CalendarProvider, url: str, current: Channel | None) -> ChannelOpened:
        if not isinstance(provider, BookingCalendar):
            raise Refused("simplybook channels need a SimplyBook booking calendar", provider=PROVIDER)
        company = str(getattr(provider.source, "company", "") or "")
        if not company:
            raise Refused("simplybook: the connection names no company", provider=PROVIDER)
        expires = datetime.now(UTC) + timedelta(days=30)
        remote_id = f"simplybook-callback-{hashlib.sha256((url + provider.staff_id).encode()).hexdigest()[:24]}"
        channel = Channel(remote_id, url, company, expires, provider.staff_id)
        if current is not None and current.remote_id == remote_id and current.secret == company:
            return ChannelOpened(channel, renewed=True, in_place=True)
        return ChannelOpened(channel, renewed=current is not None, retire=current)

    async def stop(self, provider: CalendarProvider, channel: Channel) -> None:
        """Nothing to stop at SimplyBook: the callback URL is the company's setting."""
        return None
