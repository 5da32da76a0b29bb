"""The fake Nylas's webhook destinations: create (sends `GET ?challenge=` to the URL first and is
refused when the answer is not the raw value; the secret is answered only here and at rotation),
list, get, update, delete, and rotate-secret on both documented paths."""

from __future__ import annotations

import secrets
import uuid
from typing import Any

import aiohttp
from aiohttp import web

from tests.adapters.nylas.fakes.nylas_store import NylasError, Webhook

__all__ = ["CHALLENGE_TIMEOUT", "WebhookRoutes"]

CHALLENGE_TIMEOUT = 10.0


class WebhookRoutes:
    """Mixed into NylasFake: the attributes below are its."""

    webhooks: dict[str, Webhook]
    rotate_paths: set[str]
    _session: aiohttp.ClientSession | None

    @staticmethod
    async def _json(request: web.Request) -> dict[str, Any]:
        raise NotImplementedError

    @staticmethod
    def _data(data: Any) -> web.Response:
        raise NotImplementedError

    @staticmethod
    def _webhook_view(hook: Webhook, *, with_secret: bool = False) -> dict[str, Any]:
        view: dict[str, Any] = {"id": hook.id, "trigger_types": hook.triggers, "webhook_url": hook.url,
                                "status": hook.status, "description": hook.description,
                                "notification_email_addresses": [], "created_at": 1700000000,
                                "updated_at": 1700000000, "status_updated_at": 1700000000}
        if with_secret:
            view["webhook_secret"] = hook.secret
        return view

    def webhook(self, request: web.Request) -> Webhook:
        hook = self.webhooks.get(request.match_info["id"])
        if hook is None:
            raise NylasError(404, "not_found_error", "webhook not found")
        return hook

    async def create_webhook(self, request: web.Request) -> web.Response:
        body = await self._json(request)
        url, triggers = body.get("webhook_url"), body.get("trigger_types")
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            raise NylasError(400, "invalid_request_error", "webhook_url must be an https URL")
        if not isinstance(triggers, list) or not triggers or not all(isinstance(t, str) for t in triggers):
            raise NylasError(400, "invalid_request_error", "trigger_types is required")
        challenge = secrets.token_urlsafe(16)
        assert self._session is not None
        try:
            async with self._session.get(url, params={"challenge": challenge},
                                         timeout=aiohttp.ClientTimeout(total=CHALLENGE_TIMEOUT)) as answer:
                ok = answer.status == 200 and (await answer.text()) == challenge
        except (TimeoutError, aiohttp.ClientError):
            ok = False
        if not ok:
            raise NylasError(400, "invalid_request_error",
                             "webhook_url did not answer the challenge with its value within 10 seconds")
        hook = Webhook("wh-" + secrets.token_hex(8), url, list(triggers), secrets.token_hex(32),
                       description=str(body.get("description") or ""))
        self.webhooks[hook.id] = hook
        return self._data(self._webhook_view(hook, with_secret=True))

    async def list_webhooks(self, request: web.Request) -> web.Response:
        return self._data([self._webhook_view(h) for h in self.webhooks.values()])

    async def get_webhook(self, request: web.Request) -> web.Response:
        return self._data(self._webhook_view(self.webhook(request)))

    async def update_webhook(self, request: web.Request) -> web.Response:
        hook, body = self.webhook(request), await self._json(request)
        if "trigger_types" in body:
            hook.triggers = list(body["trigger_types"])
        if "description" in body:
            hook.description = str(body["description"])
        if "status" in body:
            hook.status = str(body["status"])
        return self._data(self._webhook_view(hook))

    async def delete_webhook(self, request: web.Request) -> web.Response:
        self.webhook(request)
        del self.webhooks[request.match_info["id"]]
        return web.json_response({"request_id": str(uuid.uuid4()), "data": {"status": "success"}})

    def _rotate(self, request: web.Request, path: str) -> web.Response:
        if path not in self.rotate_paths:
            raise NylasError(404, "not_found_error", "Not Found")
        hook = self.webhook(request)
        hook.secret = secrets.token_hex(32)  # the old secret stops at once
        return self._data(self._webhook_view(hook, with_secret=True))

    async def rotate_post(self, request: web.Request) -> web.Response:
        return self._rotate(request, "post")

    async def rotate_put(self, request: web.Request) -> web.Response:
        return self._rotate(request, "put")

