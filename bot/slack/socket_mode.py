"""Socket Mode whose `close()` ends what it started.

slack_sdk's aiohttp `SocketModeClient.close()` cancels its reader, processor and monitor tasks but
does not wait for them, and each envelope runs in a task nobody keeps (`ensure_future`): after the
server shut down they were still running, against a Core being closed, and the test loop's guard
found them. Here close() lets the envelopes in progress finish (up to `grace` seconds, then
cancels them) and waits for every task the client started, its caller's cancellation excepted.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

from slack_bolt.adapter.socket_mode.async_base_handler import AsyncBaseSocketModeHandler
from slack_bolt.adapter.socket_mode.async_internals import run_async_bolt_app, send_async_response
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest

__all__ = ["ClosingSocketModeClient", "SocketModeHandler"]

log = logging.getLogger("clinicbot.slack")

#: How long close() lets envelopes being answered finish before it cancels them.
CLOSE_GRACE_SECONDS = 5.0
#: apps.connections.open's answers that no retry changes: the app token is wrong, revoked or lacks the scope.
REFUSED = frozenset({"invalid_auth", "not_authed", "token_revoked", "account_inactive", "missing_scope",
                     "not_allowed_token_type"})


class ClosingSocketModeClient(SocketModeClient):
    """slack_sdk's aiohttp client, with its envelope tasks kept and every task awaited on close()."""

    def __init__(self, *args: Any, grace: float = CLOSE_GRACE_SECONDS, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.grace = grace
        #: envelopes being handled right now
        self.handling: set[asyncio.Future[Any]] = set()
        #: monitor and reader tasks of sessions replaced by a reconnect (cancelled, maybe not ended)
        self._retired: set[asyncio.Future[Any]] = set()

    async def process_message(self) -> None:
        raw_message = await self.message_queue.get()
        if raw_message is None:
            return
        message: dict[str, Any] = json.loads(raw_message) if raw_message.startswith("{") else {}
        task = asyncio.ensure_future(self.run_message_listeners(message, raw_message))
        self.handling.add(task)
        task.add_done_callback(self.handling.discard)

    async def connect(self) -> None:
        """Connect; raises SlackApiError when Slack refuses the app token (slack_sdk's loop retried that
        for ever, every 10 s, and the server never finished starting). Other failures are retried."""
        if self.wss_uri is None:
            try:
                self.wss_uri = await self.issue_new_wss_url()
            except SlackApiError as exc:
                if exc.response.get("error") in REFUSED:
                    raise
            except Exception:  # noqa: S110 - unreachable, 5xx: the loop below retries
                pass
        before = {self.current_session_monitor, self.message_receiver}
        try:
            await super().connect()  # type: ignore[no-untyped-call]
        finally:
            after = {self.current_session_monitor, self.message_receiver}
            self._retired.update(f for f in before - after if f is not None)
            self._retired = {f for f in self._retired if not f.done()}

    async def close(self) -> None:
        try:
            await super().close()  # type: ignore[no-untyped-call]  # sets `closed`, closes the websocket, cancels the client's tasks
        finally:
            if self.handling:
                _, late = await asyncio.wait(set(self.handling), timeout=self.grace)
                if late:
                    log.warning("closing Socket Mode cancels envelopes still being answered",
                                extra={"count": len(late)})
                    for task in late:
                        task.cancel()
            tasks = {self.message_processor, self.current_session_monitor, self.message_receiver,
                     *self._retired, *self.handling}
            pending = {t for t in tasks if t is not None}
            for task in pending:
                task.cancel()
            if pending:
                # asyncio.wait, not gather or suppress(CancelledError): the tasks' own cancellation
                # is not raised here, the caller's still is.
                await asyncio.wait(pending)
            for task in pending:
                if not task.cancelled() and task.exception() is not None:
                    log.warning("a Socket Mode task failed", extra={"error": type(task.exception()).__name__})


class SocketModeHandler(AsyncBaseSocketModeHandler):
    """bolt's AsyncSocketModeHandler over `ClosingSocketModeClient`."""

    app: AsyncApp
    client: ClosingSocketModeClient

    def __init__(self, app: AsyncApp, app_token: str, grace: float = CLOSE_GRACE_SECONDS) -> None:
        self.app = app
        self.app_token = app_token
        self.client = ClosingSocketModeClient(app_token=app_token, logger=app.logger, web_client=app.client,
                                              grace=grace)
        self.client.socket_mode_request_listeners.append(self.handle)  # type: ignore[arg-type]

    async def connect_async(self) -> None:
        await self.client.connect()

    async def close_async(self) -> None:
        await self.client.close()

    async def handle(self, client: ClosingSocketModeClient, req: SocketModeRequest) -> None:  # type: ignore[override]
        start = time.time()
        response = await run_async_bolt_app(self.app, req)
        await send_async_response(client, req, response, start)
