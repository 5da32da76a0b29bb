"""Nylas webhooks: the challenge handshake, the signature, and the destinations clinicbot manages.

- A destination is made with the API key (`POST /v3/webhooks`) for the calendar triggers, pointing
  at this server's `/webhooks/nylas/{connection}` route. Nylas answers the new destination's
  `webhook_secret` once, at creation (and at each rotation): the core stores it encrypted with the
  channel. Before it activates the destination Nylas sends `GET ?challenge=<value>`, answered with
  the raw value.
- Every delivery carries `x-nylas-signature`, the lower-case hex HMAC-SHA256 of the raw body keyed
  with the secret. It is checked, in constant time, before the body is decoded; a forged or
  missing one is refused (401) and changes nothing.
- Deliveries come at least once: the envelope `id` goes into the connection's persisted replay
  memory, and a copy seen before is acknowledged without a second sync.
- A destination is application-wide: it receives every grant's events, so the delivery's
  `grant_id` routes it. One for another connection's grant is acknowledged and ignored (that
  connection's own destination brings it there). The delivery names the grant by its id, also
  for a grant added with the API key by its email: `NylasAppWebhook.account_config` looks the
  id up once (`GET /v3/grants/{email}`) and the connection keeps it.
- event.created/updated/deleted (and their `.transformed` variants) and calendar changes ask for
  a sync of the connection; grant.expired asks for one too, which meets the 401 and gives the
  reconnect card.
- The secret is rotated at each renewal. Nylas's API reference and its SDK disagree on the path
  (`POST /v3/webhooks/rotate-secret/{id}` and `PUT /v3/webhooks/{id}/rotate-secret`): the first is
  tried, the second when Nylas does not know it.
"""

from __future__ import annotations

import gzip
import hashlib
import hmac
import json
import logging
import zlib
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from adapters.nylas.client import PROVIDER, NylasClient
from adapters.nylas.discovery import check_grant
from adapters.nylas.provider import NylasCalendar, open_client
from adapters.nylas.provider import grant_id as named_grant
from adapters.nylas.settings import nylas_settings
from sync.contract import BadPayload, CalendarProvider, ConnectionInfo, NotFound, Refused
from sync.contract.integration import (
    AppChannel,
    AppDelivery,
    Channel,
    ChannelDesk,
    ChannelOpened,
    HostSettings,
    WebhookAnswer,
    WebhookRequest,
)

__all__ = ["SIGNATURE_HEADER", "TRIGGERS", "NylasAppWebhook", "NylasPush", "NylasWebhooks", "sign",
           "verify_signature"]

log = logging.getLogger("clinicbot.nylas")
SIGNATURE_HEADER = "x-nylas-signature"
#: Calendars only: clinicbot never asks for mail or contacts.
TRIGGERS = ("event.created", "event.updated", "event.deleted", "calendar.created", "calendar.updated",
            "calendar.deleted", "grant.expired")
#: The secret is rotated this often (the channel's "expiry"); the renewal job does it a day early.
ROTATE_EVERY = timedelta(days=30)
RENEW_MARGIN = timedelta(days=1)
#: Nylas waits 10 s for a challenge's answer; a challenge is short.
MAX_CHALLENGE = 512
MAX_INFLATED = 1024 * 1024


def sign(body: bytes, secret: str) -> str:
    """Nylas's signature of a delivery: lower-case hex HMAC-SHA256 of the raw body."""
    return hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def verify_signature(body: bytes, header: str, secret: str) -> bool:
    """True when `header` is the signature of `body` under `secret` (constant time; empty ones never match)."""
    if not secret or not header:
        return False
    return hmac.compare_digest(sign(body, secret).encode("ascii"), header.strip().lower().encode("ascii", "replace"))


def _inflate(request: WebhookRequest) -> bytes:
    encoding = request.headers.get("content-encoding", "").lower()
    if encoding not in ("gzip", "deflate"):
        return request.body
    try:
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS)
        data = inflater.decompress(request.body, MAX_INFLATED)
    except (zlib.error, gzip.BadGzipFile):
        raise BadPayload("nylas: a compressed delivery that does not inflate", provider=PROVIDER) from None
    if inflater.unconsumed_tail:
        raise BadPayload("nylas: a compressed delivery too large", provider=PROVIDER)
    return data


def _trigger(kind: str) -> str:
    return kind.removesuffix(".transformed")


def _not_a_post(request: WebhookRequest) -> WebhookAnswer | None:
    """The answer to anything but a POST: a GET echoes its challenge (how Nylas checks a destination)."""
    if request.method == "GET":
        challenge = request.query.get("challenge", "")
        if not challenge or len(challenge) > MAX_CHALLENGE:
            return WebhookAnswer(400, "no challenge")
        return WebhookAnswer(200, challenge)
    if request.method != "POST":
        return WebhookAnswer(405, "GET or POST only")
    return None


def _notification(request: WebhookRequest) -> tuple[dict[str, Any], str, str] | WebhookAnswer:
    """A signed delivery's (object, type, delivery id), or the 400 answer to a body that is not one."""
    try:
        envelope = json.loads(_inflate(request))
    except (ValueError, BadPayload):
        return WebhookAnswer(400, "body is not JSON")
    data = envelope.get("data") if isinstance(envelope, dict) else None
    obj = data.get("object") if isinstance(data, dict) else None
    kind, delivery_id = envelope.get("type"), envelope.get("id")
    if not (isinstance(obj, dict) and isinstance(kind, str) and isinstance(delivery_id, str) and delivery_id):
        return WebhookAnswer(400, "not a Nylas notification")
    return obj, kind, delivery_id


class NylasWebhooks:
    """Nylas's signed-webhook capability: challenge, signature, replay memory, routing by grant."""

    max_body = 512 * 1024

    async def handle(self, request: WebhookRequest, desk: ChannelDesk) -> WebhookAnswer:
        if (answer := _not_a_post(request)) is not None:
            return answer
        header = request.headers.get(SIGNATURE_HEADER, "")
        channels = await desk.channels()
        channel = next((c for c in channels if verify_signature(request.body, header, c.secret)), None)
        if channel is None:
            log.warning("nylas webhook with a missing or bad signature", extra={"connection": desk.connection_id})
            return WebhookAnswer(401, "bad signature")
        notification = _notification(request)
        if isinstance(notification, WebhookAnswer):
            return notification
        obj, kind, delivery_id = notification
        grant = obj.get("grant_id")
        if grant != channel.resource_id:
            # Another connection's grant: its own destination delivers it there.
            return WebhookAnswer(200, "not this connection's grant")
        if not await desk.first_delivery(f"nylas:{delivery_id}"):
            log.info("nylas delivery seen before", extra={"connection": desk.connection_id})
            return WebhookAnswer(200, "duplicate")
        trigger = _trigger(kind)
        if trigger.startswith(("event.", "calendar.")) or trigger == "grant.expired":
            await desk.sync(channel, trigger)
        return WebhookAnswer(200, "ok")


def _calendar(provider: CalendarProvider) -> NylasCalendar:
    if not isinstance(provider, NylasCalendar):
        raise Refused(f"nylas: cannot make a webhook for a {type(provider).__name__}", provider=PROVIDER)
    return provider


def _secret(data: dict[str, Any]) -> str:
    secret = data.get("webhook_secret")
    if not isinstance(secret, str) or not secret:
        raise BadPayload("nylas: the webhook answer carries no webhook_secret", provider=PROVIDER)
    return secret


async def rotate_secret(api: NylasClient, webhook_id: str) -> str:
    """A new secret for the destination, on whichever of the two documented paths Nylas answers."""
    quoted = quote(webhook_id, safe="")
    try:
        return _secret(await api.data("POST", f"/v3/webhooks/rotate-secret/{quoted}"))
    except (NotFound, Refused):
        # The API reference's path unknown here (404/405): the SDK's path. A destination that is
        # really gone is NotFound on this one too.
        return _secret(await api.data("PUT", f"/v3/webhooks/{quoted}/rotate-secret"))


class NylasPush:
    """Nylas webhook destinations as push channels: made with the route's URL, their secret rotated, deleted."""

    renew_margin = RENEW_MARGIN

    def api_url(self, host: HostSettings) -> str:
        return nylas_settings(host).nylas_api_url

    async def open(self, provider: CalendarProvider, url: str, current: Channel | None) -> ChannelOpened:
        calendar = _calendar(provider)
        api = calendar.api
        now = datetime.now(UTC)
        # Deliveries name the grant by its id, while a connection may name it by its email: ask Nylas.
        grant = await api.data("GET", f"/v3/grants/{quote(calendar.grant_id, safe='')}")
        grant_id = grant.get("id")
        if not isinstance(grant_id, str) or not grant_id:
            raise BadPayload("nylas: the grant has no id", provider=PROVIDER)
        if current is not None:
            try:
                found = await api.data("GET", f"/v3/webhooks/{quote(current.remote_id, safe='')}")
            except NotFound:
                found = None
            if found is not None and found.get("webhook_url") == url and found.get("status") != "failed":
                secret = await rotate_secret(api, current.remote_id)
                log.info("nylas webhook secret rotated", extra={"webhook": current.remote_id})
                return ChannelOpened(Channel(current.remote_id, grant_id, secret, now + ROTATE_EVERY,
                                             calendar.calendar_id), renewed=True)
        made = await api.data("POST", "/v3/webhooks", json={
            "trigger_types": list(TRIGGERS), "webhook_url": url, "description": "clinicbot calendar sync"})
        webhook_id = made.get("id")
        if not isinstance(webhook_id, str) or not webhook_id:
            raise BadPayload("nylas: the new webhook has no id", provider=PROVIDER)
        channel = Channel(webhook_id, grant_id, _secret(made), now + ROTATE_EVERY, calendar.calendar_id)
        return ChannelOpened(channel, renewed=current is not None, retire=current)

    async def stop(self, provider: CalendarProvider, channel: Channel) -> None:
        try:
            await _calendar(provider).api.request("DELETE", f"/v3/webhooks/{quote(channel.remote_id, safe='')}")
        except NotFound:
            return


class NylasAppWebhook:
    """The one destination for the whole application (Nylas webhooks are app-wide), routed by grant_id.

    Before it, each connection had its own destination, and each received every grant's events:
    N connections meant N deliveries of every change. The renewal job makes this one and retires the
    per-connection ones (sync.integrations.app_webhooks)."""

    renew_margin = RENEW_MARGIN

    @staticmethod
    def _api(host: HostSettings, transport: Any) -> NylasClient:
        settings = nylas_settings(host)
        if not settings.nylas_api_key:
            raise Refused("nylas: CLINICBOT_NYLAS_API_KEY is not set; webhooks are made with the API key",
                          provider=PROVIDER)
        return NylasClient(settings.nylas_api_url, settings.nylas_api_key, transport=transport)

    async def open(self, host: HostSettings, url: str, current: AppChannel | None, transport: Any = None
                   ) -> AppChannel:
        api = self._api(host, transport)
        now = datetime.now(UTC)
        try:
            if current is not None:
                try:
                    found = await api.data("GET", f"/v3/webhooks/{quote(current.remote_id, safe='')}")
                except NotFound:
                    found = None
                if found is not None and found.get("webhook_url") == url and found.get("status") != "failed":
                    return AppChannel(current.remote_id, await rotate_secret(api, current.remote_id),
                                      now + ROTATE_EVERY)
            made = await api.data("POST", "/v3/webhooks", json={
                "trigger_types": list(TRIGGERS), "webhook_url": url, "description": "clinicbot calendar sync"})
        finally:
            await api.aclose()
        webhook_id = made.get("id")
        if not isinstance(webhook_id, str) or not webhook_id:
            raise BadPayload("nylas: the new webhook has no id", provider=PROVIDER)
        return AppChannel(webhook_id, _secret(made), now + ROTATE_EVERY)

    async def stop(self, host: HostSettings, remote_id: str, transport: Any = None) -> None:
        api = self._api(host, transport)
        try:
            await api.request("DELETE", f"/v3/webhooks/{quote(remote_id, safe='')}")
        except NotFound:
            return
        finally:
            await api.aclose()

    def read(self, request: WebhookRequest, secret: str) -> AppDelivery | WebhookAnswer:
        if (answer := _not_a_post(request)) is not None:
            return answer
        if not verify_signature(request.body, request.headers.get(SIGNATURE_HEADER, ""), secret):
            log.warning("nylas app webhook with a missing or bad signature")
            return WebhookAnswer(401, "bad signature")
        notification = _notification(request)
        if isinstance(notification, WebhookAnswer):
            return notification
        obj, kind, delivery_id = notification
        grant = obj.get("grant_id")
        trigger = _trigger(kind)
        if not isinstance(grant, str) or not grant or not (
                trigger.startswith(("event.", "calendar.")) or trigger == "grant.expired"):
            return WebhookAnswer(200, "nothing to sync")
        return AppDelivery(grant, f"nylas:{delivery_id}", trigger)

    def account_of(self, config: Any) -> str:
        grant = config.get("grant_id") if hasattr(config, "get") else None
        return grant if isinstance(grant, str) else ""

    async def account_config(self, conn: ConnectionInfo, host: HostSettings) -> dict[str, Any]:
        """The grant's real id, for a connection that names its grant otherwise.

        A grant added with the API key may be named by its email (Nylas takes `email`,
        `email:<addr>` or `grant:<id>` in paths), but a delivery's `data.object` is the event, whose
        `grant_id` is the grant's id and which carries no grant email: `GET /v3/grants/{email}`
        answers the grant, whose `id` is kept in the config, where `account_of` and the provider's
        paths read it."""
        if self.account_of(conn.config):
            return {}
        api = open_client(conn, host)
        try:
            grant = await check_grant(api, quote(named_grant(conn), safe=""))
        finally:
            await api.aclose()
        real = grant.get("id")
        if not isinstance(real, str) or not real:
            raise BadPayload("nylas: the grant has no id", provider=PROVIDER)
        found: dict[str, Any] = {"grant_id": real}
        if isinstance(grant.get("email"), str) and grant["email"]:
            found["email"] = grant["email"]
        return found
