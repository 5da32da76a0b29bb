"""Change-notification subscriptions of the fake Graph.

Documented behaviour followed here (learn.microsoft.com/graph/change-notifications-delivery-webhooks,
/graph/change-notifications-lifecycle-events, /graph/api/subscription-post-subscriptions):
- POST /subscriptions validates notificationUrl (and lifecycleNotificationUrl) by POSTing
  `?validationToken=<token>` with Content-Type text/plain; the endpoint must answer 200 with the
  token as plain text within 10 seconds, otherwise creation fails with 400 ValidationError.
- Outlook event subscriptions live at most 10080 minutes (7 days); PATCH expirationDateTime renews.
- Change notifications are POSTed as {"value": [changeNotification ...]} carrying subscriptionId,
  clientState, changeType, resource and resourceData; lifecycle notifications carry lifecycleEvent
  (reauthorizationRequired, subscriptionRemoved, missed) and go to lifecycleNotificationUrl.
Deviation: real Graph requires https notification URLs; the fake also accepts http on loopback.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp

from tests.adapters.graph.fakes.graph_store import GraphError, GraphStore, Mailbox

__all__ = ["MAX_EVENT_SUBSCRIPTION_MINUTES", "FakeSubscription", "SubscriptionsFake"]

MAX_EVENT_SUBSCRIPTION_MINUTES = 10080
_RESOURCE = re.compile(r"^/?(me|users/([^/]+))(?:/calendars/([^/]+))?/events$", re.IGNORECASE)


@dataclass
class FakeSubscription:
    id: str
    resource: str
    mailbox: Mailbox
    calendar_id: str | None
    change_types: set[str]
    notification_url: str
    lifecycle_url: str | None
    client_state: str | None
    expires: datetime
    app_id: str
    tenant_id: str
    needs_reauthorization: bool = False

    def json(self) -> dict[str, Any]:
        return {
            "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#subscriptions/$entity",
            "id": self.id,
            "resource": self.resource,
            "applicationId": self.app_id,
            "changeType": ",".join(sorted(self.change_types)),
            "clientState": self.client_state,
            "notificationUrl": self.notification_url,
            "lifecycleNotificationUrl": self.lifecycle_url,
            "expirationDateTime": self.expires.isoformat().replace("+00:00", "Z"),
            "creatorId": self.mailbox.user.oid,
            "latestSupportedTlsVersion": "v1_2",
            "includeResourceData": False,
            "notificationContentType": "application/json",
        }


@dataclass
class SubscriptionsFake:
    store: GraphStore
    subscriptions: dict[str, FakeSubscription] = field(default_factory=dict)
    deliveries: list[tuple[str, str, int]] = field(default_factory=list)  # (sub id, kind, status)
    validation_timeout: float = 10.0
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def create(self, body: Any, mailbox_for: Any, app_id: str, tenant_id: str) -> FakeSubscription:
        """Validate the request, run the validationToken handshake(s) and store the subscription."""
        if not isinstance(body, dict):
            raise GraphError(400, "InvalidRequest", "Empty Payload. JSON content expected.")
        for key in ("changeType", "notificationUrl", "resource", "expirationDateTime"):
            if not isinstance(body.get(key), str) or not body[key]:
                raise GraphError(400, "InvalidRequest", f"Missing required property '{key}'.")
        match = _RESOURCE.match(body["resource"])
        if not match:
            raise GraphError(400, "InvalidRequest", f"Unsupported resource '{body['resource']}'.")
        mbx: Mailbox = mailbox_for(match.group(1), match.group(2))
        calendar_id = match.group(3)
        if calendar_id and calendar_id not in mbx.calendars:
            raise GraphError(404, "ResourceNotFound", "The specified calendar was not found.")
        types = {t.strip() for t in body["changeType"].split(",")}
        if not types or not types <= {"created", "updated", "deleted"}:
            raise GraphError(400, "InvalidRequest", "changeType must be created, updated and/or deleted.")
        expires = _parse_expiry(body["expirationDateTime"])
        client_state = body.get("clientState")
        if client_state is not None and (not isinstance(client_state, str) or len(client_state) > 128):
            raise GraphError(400, "InvalidRequest", "clientState must be a string of at most 128 characters.")
        lifecycle = body.get("lifecycleNotificationUrl")
        for url in filter(None, [body["notificationUrl"], lifecycle]):
            await self._validate_endpoint(url)
        sub = FakeSubscription(
            id=str(uuid.uuid4()),
            resource=body["resource"],
            mailbox=mbx,
            calendar_id=calendar_id,
            change_types=types,
            notification_url=body["notificationUrl"],
            lifecycle_url=lifecycle,
            client_state=client_state,
            expires=expires,
            app_id=app_id,
            tenant_id=tenant_id,
        )
        self.subscriptions[sub.id] = sub
        return sub

    def renew(self, sub_id: str, body: Any) -> FakeSubscription:
        sub = self._live(sub_id)
        if not isinstance(body, dict) or not isinstance(body.get("expirationDateTime"), str):
            raise GraphError(400, "InvalidRequest", "Only expirationDateTime can be updated.")
        sub.expires = _parse_expiry(body["expirationDateTime"])
        sub.needs_reauthorization = False
        return sub

    def reauthorize(self, sub_id: str) -> None:
        self._live(sub_id).needs_reauthorization = False

    def delete(self, sub_id: str) -> None:
        self._live(sub_id)
        del self.subscriptions[sub_id]

    def _live(self, sub_id: str) -> FakeSubscription:
        sub = self.subscriptions.get(sub_id)
        if sub is None or sub.expires <= datetime.now(UTC):
            self.subscriptions.pop(sub_id, None)
            raise GraphError(404, "ResourceNotFound", "The object was not found.")
        return sub

    async def _validate_endpoint(self, url: str) -> None:
        parts = urlsplit(url)
        loopback = parts.hostname in ("127.0.0.1", "localhost", "::1")
        if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
            raise GraphError(400, "InvalidRequest", "The notification URL must use https.")
        token = "Validation: Testing client application reachability for subscription Request-Id: " + str(uuid.uuid4())
        sep = "&" if parts.query else "?"
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.validation_timeout)) as http:
                async with http.post(
                    f"{url}{sep}validationToken={quote(token)}",
                    headers={"Content-Type": "text/plain; charset=utf-8"},
                ) as resp:
                    text = await resp.text()
                    ok = resp.status == 200 and text == token
        except (aiohttp.ClientError, TimeoutError):
            ok = False
        if not ok:
            raise GraphError(
                400,
                "ValidationError",
                "Subscription validation request failed. Notification "
                "endpoint must respond with 200 OK to validation request.",
            )

    # --- delivery -----------------------------------------------------------------------------------
    def changed(self, mbx: Mailbox, calendar_id: str, event_id: str, etag: str, change_type: str) -> None:
        """Queue change notifications for every live subscription watching this event."""
        now = datetime.now(UTC)
        for sub in list(self.subscriptions.values()):
            if sub.mailbox is not mbx or sub.expires <= now or change_type not in sub.change_types:
                continue
            if sub.calendar_id and sub.calendar_id != calendar_id:
                continue
            resource = f"Users/{mbx.user.oid}/Events/{event_id}"
            item = {
                "subscriptionId": sub.id,
                "subscriptionExpirationDateTime": sub.expires.isoformat().replace("+00:00", "Z"),
                "changeType": change_type,
                "resource": resource,
                "resourceData": {
                    "@odata.type": "#Microsoft.Graph.Event",
                    "@odata.id": resource,
                    "@odata.etag": etag,
                    "id": event_id,
                },
                "clientState": sub.client_state,
                "tenantId": sub.tenant_id,
            }
            self._post_later(sub.id, change_type, sub.notification_url, {"value": [item]})

    async def lifecycle(self, sub_id: str, event: str) -> int:
        """Send one lifecycle notification now and return the status the bot answered with."""
        sub = self.subscriptions[sub_id]
        url = sub.lifecycle_url
        if url is None:
            raise ValueError("the subscription has no lifecycleNotificationUrl; Graph sends none")
        if event == "reauthorizationRequired":
            sub.needs_reauthorization = True
        item = {
            "subscriptionId": sub.id,
            "subscriptionExpirationDateTime": sub.expires.isoformat().replace("+00:00", "Z"),
            "tenantId": sub.tenant_id,
            "clientState": sub.client_state,
            "lifecycleEvent": event,
        }
        if event == "subscriptionRemoved":
            self.subscriptions.pop(sub_id, None)
        return await self._post(sub_id, event, url, {"value": [item]})

    def _post_later(self, sub_id: str, kind: str, url: str, payload: dict[str, Any]) -> None:
        task = asyncio.get_running_loop().create_task(self._post_quiet(sub_id, kind, url, payload))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _post_quiet(self, sub_id: str, kind: str, url: str, payload: dict[str, Any]) -> None:
        try:
            await self._post(sub_id, kind, url, payload)
        except (aiohttp.ClientError, TimeoutError):
            self.deliveries.append((sub_id, kind, 0))

    async def _post(self, sub_id: str, kind: str, url: str, payload: dict[str, Any]) -> int:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
            async with http.post(url, json=payload) as resp:
                await resp.read()
                self.deliveries.append((sub_id, kind, resp.status))
                return resp.status

    async def drain(self) -> None:
        """Wait until every queued notification was delivered (tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)


def _parse_expiry(text: str) -> datetime:
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise GraphError(400, "InvalidRequest", f"Invalid expirationDateTime '{text}'.") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    now = datetime.now(UTC)
    if when <= now:
        raise GraphError(400, "InvalidRequest", "Subscription expiration must be in the future.")
    if when - now > timedelta(minutes=MAX_EVENT_SUBSCRIPTION_MINUTES):
        raise GraphError(
            400,
            "InvalidRequest",
            f"Subscription expiration can only be {MAX_EVENT_SUBSCRIPTION_MINUTES} minutes in the future.",
        )
    return when
