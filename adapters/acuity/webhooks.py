"""Acuity's webhooks: `X-Acuity-Signature` is base64(HMAC-SHA256(API key, raw body)), compared in constant time.

Deliveries are form posts carrying ids only (action, id, calendarID, appointmentTypeID): they only
say to look, and the sync reads the appointment from the API. They carry no event id and no
timestamp, so the replay memory keys them by the body's hash.

clinicbot makes the webhook through Acuity's API (`POST /webhooks {event, target}`) when the
connection syncs, with `appointment.changed` only (it fires on every change, so subscribing to the
specific actions too would send each change twice), and deletes it on disconnect. Acuity's webhooks
are account-wide, so the connection's booking calendars share one: each calendar's channel names it
(`<webhook id>#<calendar id>`) with the key that signs it (the API key; for an OAuth connection the
app's client secret), stored encrypted. The renewal job checks daily that it is still there (Acuity
allows 25 per account; one deleted in Acuity is made again). A static webhook set by hand on
Acuity's Integrations page to the same URL is checked with the same key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs

from adapters.acuity.bookings import AcuityBookings
from adapters.acuity.client import PROVIDER
from adapters.acuity.settings import acuity_settings
from adapters.kit.webhooks import posted_channels
from sync.contract import BadPayload, CalendarProvider, NotFound, Refused
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
#: The one event clinicbot subscribes to: it fires on every change of an appointment.
EVENT = "appointment.changed"
#: How often the renewal job checks the webhook is still there.
CHECK_EVERY = timedelta(days=1)


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
        channels = await posted_channels(request, desk)
        if isinstance(channels, WebhookAnswer):
            return channels
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


def _source(provider: CalendarProvider) -> AcuityBookings:
    if not isinstance(provider, BookingCalendar) or not isinstance(provider.source, AcuityBookings):
        raise Refused("acuity channels need an Acuity booking calendar", provider=PROVIDER)
    return provider.source


def webhook_id(channel: Channel) -> str:
    """The Acuity webhook a channel names (`<webhook id>#<calendar id>`)."""
    return channel.remote_id.split("#", 1)[0]


class AcuityChannels:
    """The account's `appointment.changed` webhook, made through Acuity's API and shared by its calendars."""

    renew_margin = timedelta(hours=1)

    def api_url(self, host: HostSettings) -> str:
        return acuity_settings(host).acuity_api_url

    async def _find(self, source: AcuityBookings, url: str) -> str | None:
        found = await source.client.request("GET", "webhooks")
        if not isinstance(found, list):
            raise BadPayload("acuity: webhooks is not a list", provider=PROVIDER)
        for hook in found:
            if isinstance(hook, dict) and hook.get("target") == url and hook.get("event") == EVENT \
                    and hook.get("status", "active") == "active" and hook.get("id") is not None:
                return str(hook["id"])
        return None

    async def open(self, provider: CalendarProvider, url: str, current: Channel | None) -> ChannelOpened:
        source = _source(provider)
        staff = provider.staff_id if isinstance(provider, BookingCalendar) else ""
        key = source.api_key
        if not key:
            raise Refused("acuity: no key to check webhook signatures with (polling only)", provider=PROVIDER)
        expires = datetime.now(UTC) + CHECK_EVERY
        hook = await self._find(source, url)
        if hook is None:
            made = await source.client.request("POST", "webhooks", json={"event": EVENT, "target": url})
            if not isinstance(made, dict) or made.get("id") is None:
                raise BadPayload("acuity: the new webhook has no id", provider=PROVIDER)
            hook = str(made["id"])
        channel = Channel(f"{hook}#{staff}", url, key, expires, staff)
        if current is not None and current.remote_id == channel.remote_id and current.secret == key:
            return ChannelOpened(channel, renewed=True, in_place=True)
        # A channel of a webhook that is gone (or at another URL) is retired; its stop is then a 404.
        return ChannelOpened(channel, renewed=current is not None, retire=current)

    async def stop(self, provider: CalendarProvider, channel: Channel) -> None:
        """Delete the webhook at Acuity (the calendars share it: the others' channels then find it gone)."""
        hook = webhook_id(channel)
        if not (hook.isascii() and hook.isdigit()):
            return  # a channel of the static webhook, which is the account's own
        try:
            await _source(provider).client.request("DELETE", f"webhooks/{hook}")
        except NotFound:
            return
