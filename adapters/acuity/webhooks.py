"""Acuity's webhooks: `X-Acuity-Signature` is base64(HMAC-SHA256(API key, raw body)), compared in constant time.

Deliveries are form posts carrying ids only (action, id, calendarID, appointmentTypeID): they only
say to look, and the sync reads the appointment from the API. They carry no event id and no
timestamp, so the replay memory keys them by the body's hash. The webhook is the account's
static one (Acuity's Integrations page, URL `/webhooks/acuity/<connection id>`), signed with the
API key: each booking calendar's channel holds that key, stored encrypted; nothing is created at Acuity.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs

from adapters.acuity.client import PROVIDER
from adapters.acuity.settings import acuity_settings
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

__all__ = ["SIGNATURE_HEADER", "AcuityChannels", "AcuityWebhooks", "sign", "verify_signature"]

log = logging.getLogger("clinicbot.acuity")
SIGNATURE_HEADER = "x-acuity-signature"
ACTIONS = frozenset({"scheduled", "rescheduled", "canceled", "changed"})


def sign(body: bytes, key: str) -> str:
    return base64.b64encode(hmac.new(key.encode("utf-8"), body, hashlib.sha256).digest()).decode("ascii")


def verify_signature(body: bytes, header: str, key: str) -> bool:
    """True when `header` is Acuity's signature of `body` under the API key (constant-time compare)."""
    if not key:
        raise ValueError("an Acuity signature check needs the API key")
    if not body or not header:
        return False
    return hmac.compare_digest(sign(body, key).encode("ascii"), header.strip().encode("ascii", "replace"))


class AcuityWebhooks:
    """Acuity's signed-webhook capability."""

    max_body = 16 * 1024

    async def handle(self, request: WebhookRequest, desk: ChannelDesk) -> WebhookAnswer:
        if request.method != "POST":
            return WebhookAnswer(405, "POST only")
        channels = await desk.channels()
        if not channels:
            return WebhookAnswer(404, "unknown connection")
        header = request.headers.get(SIGNATURE_HEADER, "")
        channel = next((c for c in channels if c.secret and verify_signature(request.body, header, c.secret)), None)
        if channel is None:
            log.warning("acuity webhook with a bad signature", extra={"connection": desk.connection_id})
            return WebhookAnswer(401, "bad signature")
        try:
            form = parse_qs(request.body.decode("utf-8"), strict_parsing=True)
        except (UnicodeDecodeError, ValueError):
            return WebhookAnswer(400, "body is not a form")
        action, appointment = (form.get("action") or [""])[0], (form.get("id") or [""])[0]
        # ASCII digits only: isdigit() also takes "²" and other scripts' digits.
        if action not in ACTIONS or not (appointment.isascii() and appointment.isdigit()) or len(appointment) > 20:
            return WebhookAnswer(400, "not an appointment delivery")
        if not await desk.first_delivery("sha256:" + hashlib.sha256(request.body).hexdigest()):
            return WebhookAnswer(401, "replayed delivery")
        await desk.sync(channel, f"appointment.{action}")
        return WebhookAnswer(200, "ok")


class AcuityChannels:
    """Each booking calendar's channel carries the API key that signs the account's static webhook."""

    renew_margin = timedelta(days=1)

    def api_url(self, host: HostSettings) -> str:
        return acuity_settings(host).acuity_api_url

    async def open(self, provider: CalendarProvider, url: str, current: Channel | None) -> ChannelOpened:
        if not isinstance(provider, BookingCalendar):
            raise Refused("acuity channels need an Acuity booking calendar", provider=PROVIDER)
        key = str(getattr(provider.source, "api_key", "") or "")
        if not key:
            raise Refused("acuity webhooks are signed with the API key; this connection has none (polling only)",
                          provider=PROVIDER)
        expires = datetime.now(UTC) + timedelta(days=30)
        remote_id = f"acuity-static-{hashlib.sha256((url + provider.staff_id).encode()).hexdigest()[:24]}"
        if current is not None and current.remote_id == remote_id and current.secret == key:
            kept = Channel(current.remote_id, url, key, expires, provider.staff_id)
            return ChannelOpened(kept, renewed=True, in_place=True)
        return ChannelOpened(Channel(remote_id, url, key, expires, provider.staff_id), renewed=current is not None,
                             retire=current)

    async def stop(self, provider: CalendarProvider, channel: Channel) -> None:
        """Nothing to stop at Acuity: the static webhook is the account's."""
        return None
