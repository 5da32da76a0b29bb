"""Mounting Slack in the aiohttp server: modes, routes, the bolt app and its lifecycle.

Modes, chosen from the settings:
- Socket Mode (SLACK_APP_TOKEN + SLACK_BOT_TOKEN): a websocket to Slack, for clinics without a public URL;
- one workspace (SLACK_BOT_TOKEN + SLACK_SIGNING_SECRET): HTTP, the token used as is;
- install (SLACK_CLIENT_ID + SLACK_CLIENT_SECRET + SLACK_SIGNING_SECRET): HTTP and Bolt's OAuth
  flow at /slack/install and /slack/oauth_redirect, installations stored encrypted in our database,
  any number of workspaces, each bound to its practice; the installer becomes that practice's admin.
SLACK_API_URL replaces Slack's Web API base URL everywhere (tests point it at a fake).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import unquote_plus

from aiohttp import ClientSession, ClientTimeout, web
from slack_bolt.async_app import AsyncApp
from slack_bolt.oauth.async_callback_options import AsyncCallbackOptions, AsyncSuccessArgs
from slack_bolt.oauth.async_oauth_settings import AsyncOAuthSettings
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.background import Background
from bot.commands import resolve_actor
from bot.keys import CORE, SLACK, STATUS
from bot.notify import chat_notifier
from bot.shapes import Shape, shape_problem
from bot.slack.listeners import SlackListeners
from bot.slack.notifier import SlackSender
from bot.slack.socket_mode import SocketModeHandler
from bot.slack.stores import EncryptedInstallationStore, make_state_store
from bot.slack.verify import RequestVerifier
from sync.runtime.core import Core
from sync.runtime.settings import Settings

__all__ = [
    "BOT_SCOPES",
    "EVENTS",
    "FILE_EVENTS",
    "INSTALL_PATH",
    "REDIRECT_PATH",
    "ROUTES",
    "SLACK",
    "SlackRuntime",
    "mount_slack",
]

log = logging.getLogger("clinicbot.slack")

EVENTS_PATH = "/slack/events"
INSTALL_PATH = "/slack/install"
REDIRECT_PATH = "/slack/oauth_redirect"
ROUTES = (EVENTS_PATH, INSTALL_PATH, REDIRECT_PATH)
#: What the code calls: commands (/clinic), chat:write (messages and updates), im:write (conversations.open).
#: files:read and im:history: a schedule file sent to the bot in its DM (bot.slack.uploads).
BOT_SCOPES = ("commands", "chat:write", "im:write", "files:read", "im:history")
#: Events listened to: uninstalls and revoked tokens drop the stored installation.
EVENTS = ("app_uninstalled", "tokens_revoked")
#: Events a file sent to the bot raises (the listeners handle them; the manifest subscribes to them).
FILE_EVENTS = ("message.im", "file_shared")
MAX_BODY = 1024 * 1024
#: Answers being worked on at once: each mostly waits for the database, so more than a CPU's worth.
BACKGROUND_WORKERS = 16
#: Seconds an answer may wait in the queue before its work starts; past that, requests are told
#: "busy, try again" at once (see bot.background): a quick "busy" rather than an answer seconds late.
ANSWER_MAX_WAIT = 0.5
#: The same for opening a modal: Slack refuses a trigger_id 3 s after the press.
MODAL_MAX_WAIT = 1.0
#: More requests than this in flight (the one asking included) and acks stop waiting for database work.
BUSY_INFLIGHT = 2


class SlackRuntime:
    """Everything the Slack front end holds while the server runs."""

    def __init__(self, core: Core, settings: Settings, mode: str) -> None:
        self.core = core
        self.settings = settings
        self.mode = mode
        #: requests being handled right now; background work yields to them
        self.inflight = 0
        self.background = Background("slack", workers=BACKGROUND_WORKERS, limit=2000, busy=lambda: self.inflight > 0,
                                     max_wait=ANSWER_MAX_WAIT)
        self.verifier = RequestVerifier(settings.slack_signing_secret or "")
        self.http: ClientSession | None = None
        self.listeners = SlackListeners(core, self.background)
        self.listeners.busy = lambda: self.inflight > BUSY_INFLIGHT
        self.modals = Background("slack-modals", workers=4, limit=200, busy=lambda: self.inflight > 0,
                                 max_wait=MODAL_MAX_WAIT)
        self.listeners.modals = self.modals
        self.bolt = self._build_bolt()
        self.socket: SocketModeHandler | None = None

    async def drain(self) -> None:
        """Wait until the work queued after acks (answers and modal opens) is done (tests, shutdown)."""
        await self.modals.drain()
        await self.background.drain()
        await self.listeners.actors.drain()
        await self.listeners.told()

    def api_client(self, token: str | None = None) -> AsyncWebClient:
        return AsyncWebClient(token=token, base_url=self.settings.slack_api_url.rstrip("/") + "/")

    def _build_bolt(self) -> AsyncApp:
        s = self.settings
        common: dict[str, Any] = {
            "process_before_response": True,
            "request_verification_enabled": False,
            "raise_error_for_unhandled_request": False,
            "name": "clinicbot",
        }
        if self.mode == "oauth":
            engine = self.core.store.engine
            oauth = AsyncOAuthSettings(
                client_id=s.slack_client_id,
                client_secret=s.slack_client_secret,
                scopes=list(BOT_SCOPES),
                user_scopes=[],
                install_path=INSTALL_PATH,
                redirect_uri_path=REDIRECT_PATH,
                redirect_uri=f"{s.base_url()}{REDIRECT_PATH}",
                authorization_url=s.slack_oauth_url,
                installation_store=EncryptedInstallationStore(
                    client_id=s.slack_client_id or "", engine=engine
                ),
                state_store=make_state_store(self.core),
                callback_options=AsyncCallbackOptions(success=self._installed, failure=_install_failed),
            )
            bolt = AsyncApp(
                signing_secret=s.slack_signing_secret,
                oauth_settings=oauth,
                client=self.api_client(),
                **common,
            )
            bolt.enable_token_revocation_listeners()
        else:
            bolt = AsyncApp(
                token=s.slack_bot_token,
                signing_secret=s.slack_signing_secret or "unused-in-socket-mode",
                client=self.api_client(s.slack_bot_token),
                **common,
            )
            for event in EVENTS:
                bolt.event(event)(_ack_only)
        return bolt

    async def _installed(self, args: AsyncSuccessArgs) -> BoltResponse:
        """Bind the workspace to its practice; the installer becomes the first admin of a fresh one."""
        inst = args.installation
        if inst.team_id and inst.user_id:
            await resolve_actor(
                self.core, "slack", inst.team_id, inst.user_id, workspace_name=inst.team_name or ""
            )
        log.info("Slack workspace installed", extra={"team": inst.team_id})
        return await args.default.success(args)

    # --- lifecycle ----------------------------------------------------------------------------
    async def lifecycle(self, app: web.Application) -> AsyncIterator[None]:
        self.http = ClientSession(timeout=ClientTimeout(total=10))
        self.listeners.http = self.http
        self.listeners.register(self.bolt)

        chat_notifier(self.core).senders["slack"] = SlackSender(self)
        await self.background.start()
        await self.modals.start()
        try:
            if self.mode == "socket":
                self.socket = SocketModeHandler(self.bolt, self.settings.slack_app_token or "")
                try:
                    await self.socket.connect_async()
                except SlackApiError as exc:  # the app token is refused: the rest of the server still runs
                    refused = str(exc.response.get("error") or "refused")
                    log.error("Slack refused the Socket Mode app token; Slack is off until SLACK_APP_TOKEN is fixed",
                              extra={"error": refused})
                    app[STATUS]["slack"] = f"enabled, but Slack refused the app token ({refused}): no Slack events"
                    await self.socket.close_async()
            yield
        finally:
            try:
                if self.socket is not None:
                    await self.socket.close_async()  # waits for the envelopes and tasks it started
            finally:
                try:
                    await self.modals.stop()
                finally:
                    await self.background.stop()
                    await self.listeners.actors.drain()  # refreshes started by cached answers
                    await self.listeners.told()
                    await self.http.close()

    # --- HTTP ---------------------------------------------------------------------------------
    async def events(self, request: web.Request) -> web.Response:
        if self.mode == "socket":
            return web.Response(status=404, text="Slack runs in Socket Mode here; /slack/events is off\n")
        if request.content_length is not None and request.content_length > MAX_BODY:
            return web.Response(status=413, text="request too large\n")
        self.inflight += 1
        try:
            return await self._events(request)
        finally:
            self.inflight -= 1

    async def _events(self, request: web.Request) -> web.Response:
        body = await request.read()
        refused = self.verifier.check(
            request.headers.get("X-Slack-Request-Timestamp"), request.headers.get("X-Slack-Signature"), body
        )
        if refused is not None:
            log.info("refused a Slack request", extra={"reason": refused})
            return web.Response(status=401, text=f"{refused}\n")
        try:
            text = body.decode("utf-8")
            if not text.startswith(("{", "payload=")):  # a slash command (form body), not JSON or a payload
                answer = await self.listeners.cached_answer(_command_fields(text))
                if answer is not None:
                    return web.Response(body=answer, content_type="application/json")
            bolt_req = AsyncBoltRequest(body=text, query=request.query_string, headers=dict(request.headers))
        # RecursionError: "[[[[..." nested too deep; AttributeError/TypeError: bolt reads the
        # parsed payload as a dict while building the request, and `payload=true` is not one.
        except (UnicodeDecodeError, ValueError, RecursionError, AttributeError, TypeError):
            return web.Response(status=400, text="malformed request body\n")
        problem = payload_problem(bolt_req.body)
        if problem is not None:
            return web.Response(status=400, text=f"malformed request: {problem}\n")
        if self.mode != "oauth":  # one workspace: nothing for bolt to authorize before saying "busy"
            shed = self.listeners.shed(bolt_req.body)
            if shed is not None:
                return web.Response(body=shed[0], content_type=shed[1])
        resp = await self.bolt.async_dispatch(bolt_req)
        if resp.status >= 500:
            # Our listeners do not raise; a 5xx here is bolt tripping over a payload we let through.
            log.error("bolt could not process a Slack request", extra={"status": resp.status})
            return web.Response(status=400, text="malformed request\n")
        return _to_aiohttp(resp)

    async def install(self, request: web.Request) -> web.Response:
        flow = self.bolt.oauth_flow
        if flow is None:
            return web.Response(status=404, text="Slack install is off: this server serves one workspace\n")
        bolt_req = AsyncBoltRequest(body="", query=request.query_string, headers=dict(request.headers))
        if request.path == INSTALL_PATH:
            return _to_aiohttp(await flow.handle_installation(bolt_req))
        return _to_aiohttp(await flow.handle_callback(bolt_req))


#: The slash-command fields an answer from the cache needs (the rest, e.g. response_url, it does not).
_COMMAND_FIELDS = frozenset({"command", "text", "team_id", "user_id", "user_name"})


def _command_fields(form: str) -> dict[str, str]:
    """The fields of a form body that `cached_answer` reads, decoded; the others are not decoded."""
    fields: dict[str, str] = {}
    for pair in form.split("&"):
        name, _, value = pair.partition("=")
        if name in _COMMAND_FIELDS:
            fields[name] = unquote_plus(value) if "%" in value or "+" in value else value
    return fields


# What bolt and the listeners index into without checking, by payload type (see bot.shapes).
_STR, _OBJ, _OPT_OBJ = (str,), (dict,), (dict, type(None))
_USER: Shape = {"id": (True, _STR, None), "team_id": (False, _STR, None), "username": (False, _STR, None),
                "name": (False, _STR, None)}
_OPTION: Shape = {"value": (False, _STR, None)}
_ELEMENT: Shape = {"type": (False, _STR, None), "value": (False, (str, type(None)), None),
                   "selected_date": (False, (str, type(None)), None), "selected_time": (False, (str, type(None)), None),
                   "selected_option": (False, _OPT_OBJ, _OPTION)}
_STATE: Shape = {"values": (False, _OBJ, {"*": (False, _OBJ, {"*": (False, _OBJ, _ELEMENT)})})}
_ACTION: Shape = {"action_id": (True, _STR, None), "block_id": (False, _STR, None), "type": (False, _STR, None),
                  "value": (False, _STR, None), "action_ts": (False, _STR, None),
                  "selected_date": (False, (str, type(None)), None), "selected_time": (False, (str, type(None)), None),
                  "selected_option": (False, _OPT_OBJ, _OPTION)}
_VIEW: Shape = {"type": (True, _STR, None), "id": (False, _STR, None), "callback_id": (False, _STR, None),
                "private_metadata": (False, _STR, None), "state": (False, _OBJ, _STATE)}
_INTERACTION: Shape = {
    "user": (True, _OBJ, _USER),
    "team": (False, _OPT_OBJ, {"id": (False, _STR, None)}),
    "channel": (False, _OPT_OBJ, {"id": (False, _STR, None)}),
    "container": (False, _OPT_OBJ, {"message_ts": (False, _STR, None), "channel_id": (False, _STR, None),
                                    "is_ephemeral": (False, (bool,), None)}),
    "response_url": (False, _STR, None),
    "trigger_id": (False, _STR, None),
    "api_app_id": (False, _STR, None),
    "state": (False, _OBJ, _STATE),
}
_SHAPES: dict[str, Shape] = {
    "block_actions": {**_INTERACTION, "actions": (True, (list,), _ACTION)},
    "view_submission": {**_INTERACTION, "view": (True, _OBJ, _VIEW)},
    "view_closed": {**_INTERACTION, "view": (True, _OBJ, _VIEW)},
    "shortcut": _INTERACTION,
    "message_action": _INTERACTION,
    "event_callback": {"event": (True, _OBJ, {"type": (True, _STR, None)}), "team_id": (False, _STR, None)},
    "url_verification": {"challenge": (True, _STR, None)},
}


def payload_problem(body: Any) -> str | None:
    """Why a (signed) body is not a Slack payload we can hand to bolt, or None.

    Bolt and the listeners index into payloads without checking types: a validly signed payload
    of the wrong shape (`actions: []`, `container: "C1"`, `payload=[1]`) raised inside them.
    """
    if not isinstance(body, dict):
        return "the payload is not an object"
    if not body:
        return "empty body"
    if "command" in body:
        missing = [k for k in ("command", "team_id", "user_id") if not isinstance(body.get(k), str) or not body[k]]
        return f"slash command without {', '.join(missing)}" if missing else None
    kind = body.get("type")
    if not isinstance(kind, str):
        return "no payload type"
    if kind == "block_actions" and not body.get("actions"):
        return "block_actions without actions"
    return shape_problem(body, _SHAPES.get(kind, {}))


async def _ack_only(ack: Any) -> None:
    await ack()


async def _install_failed(args: Any) -> BoltResponse:
    log.warning("Slack install failed", extra={"reason": str(getattr(args, "reason", ""))[:100]})
    response: BoltResponse = await args.default.failure(args)
    return response


def _to_aiohttp(resp: BoltResponse) -> web.Response:
    headers = {
        k: v for k, v in resp.first_headers_without_set_cookie().items() if k.lower() != "content-type"
    }
    content_type = (resp.headers.get("content-type") or ["text/plain"])[0].split(";")[0]
    if resp.body.startswith("{") and content_type == "text/plain":
        content_type = "application/json"
    out = web.Response(
        status=resp.status, body=resp.body.encode(), headers=headers, content_type=content_type
    )
    for cookie in resp.cookies():
        for name, morsel in cookie.items():
            out.set_cookie(
                name,
                morsel.value,
                max_age=morsel.get("max-age") or None,
                path=morsel.get("path") or "/",
                secure=True,
                httponly=True,
            )
    return out


def mount_slack(app: web.Application, settings: Settings, mode: str) -> None:
    """Mount the Slack front end in `mode` (bot.slack.slack_mode chose it from the settings)."""
    runtime = SlackRuntime(app[CORE], settings, mode)
    app[SLACK] = runtime
    app.router.add_post(EVENTS_PATH, runtime.events)
    app.router.add_get(INSTALL_PATH, runtime.install)
    app.router.add_get(REDIRECT_PATH, runtime.install)
    app.cleanup_ctx.append(runtime.lifecycle)
    log.info("Slack front end enabled", extra={"mode": mode})
