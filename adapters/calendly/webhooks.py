"""Calendly's webhooks: `Calendly-Webhook-Signature: t=<unix>,v1=<hex>`, hex HMAC-SHA256 over `t + "." + body`.

Compared in constant time; a `t` older (or newer) than the tolerance (3 minutes) is refused, so a
captured delivery cannot be replayed later, and within the tolerance the replay memory refuses it
(key: the event kind and the invitee's URI, which Calendly sends once per change).
A delivery only says to look: it requests a sync, which reads the booking from the API; the two
deliveries of a reschedule (invitee.canceled with rescheduled, invitee.created naming the old
invitee) therefore make one move.

Routing form submissions (`routing_form_submission.created`) are leads, handed to the core's lead
intake (adapters.calendly.routing_forms); Calendly sends them to organization-scope subscriptions
only, so with the connection's `routing_forms: on` the token owner's calendar subscribes at
organization scope (when the token may: an owner's or admin's).

Subscriptions are per booking calendar (user scope), made with a signing key clinicbot chooses and
stores encrypted. Calendly disables a subscription after 24 h of failed deliveries (`state:
disabled`; it then delivers nothing) and deletes one answered 410, which the webhook route never
answers. The renewal job reads each subscription from the API every CHECK_EVERY and makes a new
one (deleting the disabled one) when it is gone or not active, so a disabled subscription is
replaced within the hour and the poll covers the gap.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
from datetime import UTC, datetime, timedelta

from adapters.calendly.bookings import CalendlyBookings, uuid_of
from adapters.calendly.client import PROVIDER
from adapters.calendly.routing_forms import ROUTING_EVENT, lead_from_submission
from adapters.calendly.settings import calendly_settings
from adapters.kit.webhooks import posted_channels
from sync.contract import BadPayload, CalendarProvider, NotFound, Refused, Unavailable
from sync.contract.booking import BookingCalendar
from sync.contract.integration import (
    Channel,
    ChannelDesk,
    ChannelOpened,
    HostSettings,
    WebhookAnswer,
    WebhookRequest,
)

__all__ = ["EVENTS", "ROUTING_EVENT", "SIGNATURE_HEADER", "CalendlySubscriptions", "CalendlyWebhooks", "sign",
           "verify_signature"]

log = logging.getLogger("clinicbot.calendly")
SIGNATURE_HEADER = "calendly-webhook-signature"
EVENTS = ("invitee.created", "invitee.canceled")
DEFAULT_TOLERANCE = 180
#: How often the renewal job reads a subscription back (one GET each): a disabled one is found this soon.
CHECK_EVERY = timedelta(hours=1)


def sign(body: bytes, key: str, t: int) -> str:
    """The header value Calendly sends for `body` signed at unix time `t`."""
    digest = hmac.new(key.encode("utf-8"), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={digest}"


def verify_signature(body: bytes, header: str, key: str, now: datetime, tolerance: int = DEFAULT_TOLERANCE) -> bool:
    """True when `header` signs `body` under `key` and its `t` is within `tolerance` seconds of `now`."""
    if not key:
        raise ValueError("a Calendly signature check needs the signing key")
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    t, v1 = parts.get("t", "").strip(), parts.get("v1", "").strip()
    # ASCII digits only, and a length a timestamp has: isdigit() alone accepts "¹²³", which int()
    # refuses, and a 400-digit `t` overflowed the subtraction below (a 500 before the check).
    if not (t.isascii() and t.isdigit()) or len(t) > 12 or not v1 or not body:
        return False
    if abs(now.timestamp() - int(t)) > tolerance:
        return False
    expected = hmac.new(key.encode("utf-8"), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode("ascii"), v1.encode("ascii", "replace"))


class CalendlyWebhooks:
    """Calendly's signed-webhook capability."""

    max_body = 256 * 1024

    def __init__(self, tolerance: int = DEFAULT_TOLERANCE) -> None:
        self.tolerance = tolerance

    async def handle(self, request: WebhookRequest, desk: ChannelDesk) -> WebhookAnswer:
        channels = await posted_channels(request, desk)
        if isinstance(channels, WebhookAnswer):
            return channels
        header = request.headers.get(SIGNATURE_HEADER, "")
        now = desk.now()
        channel = next((c for c in channels if c.secret
                        and verify_signature(request.body, header, c.secret, now, self.tolerance)), None)
        if channel is None:
            log.warning("calendly webhook with a bad or stale signature", extra={"connection": desk.connection_id})
            return WebhookAnswer(401, "bad or stale signature")
        try:
            envelope = json.loads(request.body)
            kind = str(envelope["event"])
            invitee = str(envelope["payload"]["uri"])
        except (ValueError, KeyError, TypeError):
            return WebhookAnswer(400, "not a Calendly invitee delivery")
        if kind == ROUTING_EVENT:
            try:
                lead = lead_from_submission(envelope["payload"])
            except BadPayload:
                return WebhookAnswer(400, "not a routing form submission")
        if not await desk.first_delivery(f"{kind}:{invitee}"):
            return WebhookAnswer(401, "replayed delivery")
        if kind == ROUTING_EVENT:
            # A lead, not a booking: nothing to sync. One the core cannot take (no email or phone) is
            # answered 2xx all the same: Calendly would only resend it, and then delete the subscription.
            try:
                await desk.intake_lead(lead)
            except (BadPayload, Refused) as exc:
                log.warning("calendly routing form not taken as a lead",
                            extra={"connection": desk.connection_id, "error": str(exc)[:200]})
            except Unavailable:
                return WebhookAnswer(503, "leads are not taken right now")
            return WebhookAnswer(200, "ok")
        if kind in EVENTS:
            await desk.sync(channel, kind)
        return WebhookAnswer(200, "ok")


def _source(provider: CalendarProvider) -> tuple[CalendlyBookings, str]:
    if not isinstance(provider, BookingCalendar) or not isinstance(provider.source, CalendlyBookings):
        raise Refused("calendly subscriptions need a Calendly booking calendar", provider=PROVIDER)
    return provider.source, provider.staff_id


class CalendlySubscriptions:
    """Calendly webhook subscriptions as push channels (one per booking calendar, user scope)."""

    renew_margin = timedelta(minutes=10)

    def api_url(self, host: HostSettings) -> str:
        return calendly_settings(host).calendly_api_url

    async def open(self, provider: CalendarProvider, url: str, current: Channel | None) -> ChannelOpened:
        source, user = _source(provider)
        now = datetime.now(UTC)
        if current is not None and current.resource_id == url:
            try:
                found = (await source.client.request("GET", f"/webhook_subscriptions/{current.remote_id}")) \
                    .get("resource") or {}
                if found.get("state") == "active" and found.get("callback_url") == url:
                    return ChannelOpened(Channel(current.remote_id, url, current.secret, now + CHECK_EVERY, user),
                                         renewed=True, in_place=True)
            except NotFound:
                pass
        owner, org = await source.me()
        key = secrets.token_urlsafe(32)
        made: dict[str, object] = {}
        if user == owner and source.routing_forms:
            # With `routing_forms: on`, the token owner's calendar also carries routing form submissions
            # (leads), which Calendly delivers to organization-scope subscriptions only; a token that may
            # not make one (not an owner or admin: 403) keeps the user-scope subscription, without leads.
            try:
                made = (await source.client.request("POST", "/webhook_subscriptions", json={
                    "url": url, "events": [*EVENTS, ROUTING_EVENT], "organization": org, "scope": "organization",
                    "signing_key": key})).get("resource") or {}
            except Refused:
                log.info("calendly: no organization subscription allowed; routing forms are not read",
                         extra={"user": uuid_of(user)})
        if not made:
            made = (await source.client.request("POST", "/webhook_subscriptions", json={
                "url": url, "events": list(EVENTS), "organization": org, "user": user, "scope": "user",
                "signing_key": key})).get("resource") or {}
        uri = made.get("uri")
        if not isinstance(uri, str) or not uri:
            raise BadPayload("calendly: the new subscription has no uri", provider=PROVIDER)
        return ChannelOpened(Channel(uuid_of(uri), url, key, now + CHECK_EVERY, user), renewed=current is not None,
                             retire=current)

    async def stop(self, provider: CalendarProvider, channel: Channel) -> None:
        source, _ = _source(provider)
        try:
            await source.client.request("DELETE", f"/webhook_subscriptions/{channel.remote_id}")
        except NotFound:
            return
