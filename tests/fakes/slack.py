"""A loopback stand-in for the Slack Web API, response URLs and OAuth, recording every call.

Documented behaviour it reproduces (api.slack.com/web):
- every method answers HTTP 200 with `{"ok": true, ...}` or `{"ok": false, "error": "<code>"}`;
- a missing token is `not_authed`, an unknown or revoked one `invalid_auth`;
- rate limits are HTTP 429 with a `Retry-After` header (seconds) and error `ratelimited`;
- `blocks` / `view` that Slack would reject are `invalid_blocks` / `invalid_arguments`; here the
  check is strict: each block must round-trip through slack_sdk's block models unchanged;
- a `trigger_id` works once and only for 3 seconds (`expired_trigger_id`);
- `chat.update` needs an existing message (`message_not_found`);
- `response_url` takes at most 5 posts (then HTTP 404 `used_url`), and answers "ok" as text;
- `oauth.v2.access` checks client id, secret and a single-use code (`invalid_code`,
  `bad_client_secret`);
- a file's `url_private` needs `Authorization: Bearer <a token of its workspace>` (files:read);
  without one Slack answers with a redirect to its sign-in page, not the file; `files.info` of an
  unknown file is `file_not_found`.
Faults are injected per method with `fail()` and `rate_limit()`.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import time
from dataclasses import dataclass, field
from types import FrameType
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

__all__ = ["BOT_TOKEN", "Call", "FakeSlack", "check_blocks", "check_view"]

BOT_TOKEN = "xoxb-test-token"

#: Seconds a test waits for the bot to call the fake before it fails (see FakeSlack.wait_for).
WAIT = 20.0


@dataclass
class Call:
    method: str
    args: dict[str, Any]
    token: str | None
    at: float = field(default_factory=time.monotonic)


@dataclass
class _Fault:
    error: str
    status: int = 200
    retry_after: int | None = None
    times: int = 1


class BlockError(ValueError):
    pass


def check_blocks(blocks: Any) -> None:
    """Raise BlockError unless every block parses with slack_sdk and round-trips unchanged."""
    if isinstance(blocks, str):
        blocks = json.loads(blocks)
    if not isinstance(blocks, list) or len(blocks) > 50:
        raise BlockError("blocks must be a list of at most 50")
    for raw in blocks:
        parsed = Block.parse(raw)
        if parsed is None or type(parsed) is Block:
            raise BlockError(f"unknown block {raw!r:.80}")
        if parsed.to_dict() != raw:
            raise BlockError(f"block does not round-trip: {raw!r:.120}")


def check_view(view: Any) -> None:
    """Raise BlockError unless the modal parses with slack_sdk's View and its blocks are valid."""
    if isinstance(view, str):
        view = json.loads(view)
    if not isinstance(view, dict) or view.get("type") not in ("modal", "home"):
        raise BlockError("view must be a modal or home view")
    check_blocks(view.get("blocks", []))
    if View(**view).to_dict() != view:
        raise BlockError("view does not round-trip")


class FakeSlack:
    """Start with `await fake.start()`; point SLACK_API_URL at `fake.api_url`."""

    def __init__(self, bot_token: str = BOT_TOKEN, team_id: str = "T1", bot_user_id: str = "UBOT") -> None:
        self.tokens: dict[str, dict[str, str]] = {
            bot_token: {"team_id": team_id, "user_id": bot_user_id, "bot_id": "BBOT", "team": "Test Clinic"}
        }
        self.calls: list[Call] = []
        self.responses: dict[str, list[dict[str, Any]]] = {}
        self.messages: dict[tuple[str, str], dict[str, Any]] = {}
        self.users: dict[str, dict[str, Any]] = {}
        self.oauth_codes: dict[str, dict[str, Any]] = {}
        self.client_id = "111.222"
        self.client_secret = "fake-client-secret"
        self._faults: dict[str, list[_Fault]] = {}
        self._triggers: dict[str, float] = {}
        self._ts = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self.url = ""
        self.changed = asyncio.Event()
        #: Socket Mode: app-level tokens accepted by apps.connections.open, envelopes to deliver, acks seen
        self.app_tokens: set[str] = set()
        self.socket_outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.socket_acks: list[dict[str, Any]] = []
        #: Files people sent: id -> the file object Slack describes it with, and its bytes.
        self.files: dict[str, dict[str, Any]] = {}
        self.file_bodies: dict[str, bytes] = {}
        self.file_fetches: list[tuple[str, str | None]] = []

    # --- lifecycle ------------------------------------------------------------------------------
    async def start(self) -> FakeSlack:
        app = web.Application()
        app.router.add_post("/api/{method}", self._api)
        app.router.add_get("/api/{method}", self._api)  # files.info and other readers are GETs
        app.router.add_post("/response/{rid}", self._response)
        app.router.add_get("/socket", self._socket)
        app.router.add_get("/files-pri/{file_id}/{name}", self._file)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/"

    # --- test helpers ---------------------------------------------------------------------------
    def response_url(self, rid: str) -> str:
        self.responses.setdefault(rid, [])
        return f"{self.url}/response/{rid}"

    def new_trigger(self) -> str:
        trigger = f"{next(self._ts)}.{int(time.time())}.trigger"
        self._triggers[trigger] = time.monotonic()
        return trigger

    def fail(
        self, method: str, error: str, *, status: int = 200, retry_after: int | None = None, times: int = 1
    ) -> None:
        self._faults.setdefault(method, []).append(_Fault(error, status, retry_after, times))

    def rate_limit(self, method: str, retry_after: int = 1, times: int = 1) -> None:
        self.fail(method, "ratelimited", status=429, retry_after=retry_after, times=times)

    def add_file(self, name: str, body: bytes, *, stated_size: int | None = None) -> dict[str, Any]:
        """A file as a person's upload makes it: its file object (what events and files.info carry)."""
        file_id = f"F{next(self._ts):08d}"
        url = f"{self.url}/files-pri/{file_id}/{name}"
        doc = {"id": file_id, "name": name, "title": name, "filetype": name.rsplit(".", 1)[-1],
               "size": len(body) if stated_size is None else stated_size, "url_private": url,
               "url_private_download": url + "?download=1", "mode": "hosted"}
        self.files[file_id], self.file_bodies[file_id] = doc, body
        return doc

    def calls_to(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    async def wait_for(self, predicate: Any, within: float = WAIT) -> None:
        """Wait until predicate() is true (the bot works after its ack, so tests wait for it).

        The bound is generous (a loaded CI machine is slow, and how fast is the benchmarks' business):
        it only turns "never" into a failure that says where every task of the loop was waiting."""
        deadline = time.monotonic() + within
        while not predicate():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError("timed out waiting for the bot to call the fake Slack; where this loop's "
                                     f"tasks were then:\n{_tasks_now()}")
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), remaining)
            except TimeoutError:
                pass

    # --- handlers -------------------------------------------------------------------------------
    async def _args(self, request: web.Request) -> dict[str, Any]:
        raw = await request.text()
        if request.content_type == "application/json":
            doc = json.loads(raw or "{}")
            return doc if isinstance(doc, dict) else {}
        args: dict[str, Any] = dict(parse_qsl(raw, keep_blank_values=True))
        args.update(request.query)
        return args

    def _reply(self, body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
        self.changed.set()
        return web.json_response(body, status=status, headers=headers)

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        try:
            args = await self._args(request)
        except ValueError:
            return self._reply({"ok": False, "error": "invalid_json"})
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Basic "):
            # oauth.v2.access accepts client_id:client_secret as HTTP Basic auth (preferred by Slack).
            client_id, _, client_secret = base64.b64decode(auth[6:]).decode().partition(":")
            args.update(client_id=client_id, client_secret=client_secret)
            auth = ""
        token = auth.removeprefix("Bearer ").strip() or args.pop("token", None)
        self.calls.append(Call(method, args, token))
        faults = self._faults.get(method)
        if faults:
            fault = faults[0]
            fault.times -= 1
            if fault.times <= 0:
                faults.pop(0)
            headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else None
            return self._reply({"ok": False, "error": fault.error}, fault.status, headers)
        if method == "oauth.v2.access":
            return self._reply(self._oauth(args))
        if method == "apps.connections.open":
            if token not in self.app_tokens:
                return self._reply({"ok": False, "error": "invalid_auth"})
            return self._reply({"ok": True, "url": self.url.replace("http", "ws", 1) + "/socket"})
        if not token:
            return self._reply({"ok": False, "error": "not_authed"})
        who = self.tokens.get(token)
        if who is None:
            return self._reply({"ok": False, "error": "invalid_auth"})
        handler = getattr(self, "_m_" + method.replace(".", "_"), None)
        if handler is None:
            return self._reply({"ok": False, "error": "unknown_method"}, 404)
        try:
            return self._reply(handler(args, who))
        except BlockError as exc:
            return self._reply({"ok": False, "error": "invalid_blocks", "detail": str(exc)})

    async def _response(self, request: web.Request) -> web.Response:
        rid = request.match_info["rid"]
        if rid not in self.responses:
            return web.Response(status=404, text="expired_url")
        posted = self.responses[rid]
        if len(posted) >= 5:
            return web.Response(status=404, text="used_url")
        try:
            body = json.loads(await request.text())
            if "blocks" in body:
                check_blocks(body["blocks"])
        except (ValueError, BlockError) as exc:
            return web.Response(status=400, text=f"invalid_blocks: {exc}")
        posted.append(body)
        self.calls.append(Call("response_url", {"rid": rid, **body}, None))
        self.changed.set()
        return web.Response(text="ok")

    async def _file(self, request: web.Request) -> web.StreamResponse:
        file_id = request.match_info["file_id"]
        auth = request.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ").strip() if auth.startswith("Bearer ") else None
        self.file_fetches.append((file_id, token))
        self.changed.set()
        if token is None or token not in self.tokens:
            return web.Response(status=302, headers={"Location": "https://slack.com/signin"})
        body = self.file_bodies.get(file_id)
        if body is None:
            return web.Response(status=404, text="file not found")
        return web.Response(body=body, content_type="application/octet-stream")

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        """Socket Mode: say hello, push queued envelopes, record the client's acks."""
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_json({"type": "hello", "num_connections": 1, "connection_info": {"app_id": "A1"}})

        async def pump() -> None:
            while not ws.closed:
                envelope = await self.socket_outbox.get()
                await ws.send_json(envelope)

        sender = asyncio.create_task(pump())
        try:
            async for msg in ws:
                if msg.type.name == "TEXT":
                    self.socket_acks.append(json.loads(msg.data))
                    self.changed.set()
        finally:
            sender.cancel()
        return ws

    # --- methods --------------------------------------------------------------------------------
    def _m_auth_test(self, args: dict[str, Any], who: dict[str, str]) -> dict[str, Any]:
        return {
            "ok": True,
            "url": "https://test.slack.com/",
            "team": who["team"],
            "user": "clinicbot",
            "team_id": who["team_id"],
            "user_id": who["user_id"],
            "bot_id": who["bot_id"],
        }

    def _post(self, args: dict[str, Any], ephemeral: bool) -> dict[str, Any]:
        channel = args.get("channel")
        if not channel:
            return {"ok": False, "error": "channel_not_found"}
        if "blocks" in args:
            check_blocks(args["blocks"])
        elif not args.get("text"):
            return {"ok": False, "error": "no_text"}
        ts = f"{int(time.time())}.{next(self._ts):06d}"
        if ephemeral:
            if not args.get("user"):
                return {"ok": False, "error": "user_not_in_channel"}
            return {"ok": True, "message_ts": ts}
        message = {"ts": ts, "text": args.get("text", ""), "blocks": args.get("blocks")}
        self.messages[(channel, ts)] = message
        return {"ok": True, "channel": channel, "ts": ts, "message": message}

    def _m_chat_postMessage(self, args: dict[str, Any], who: dict[str, str]) -> dict[str, Any]:
        return self._post(args, ephemeral=False)

    def _m_chat_postEphemeral(self, args: dict[str, Any], who: dict[str, str]) -> dict[str, Any]:
        return self._post(args, ephemeral=True)

    def _m_chat_update(self, args: dict[str, Any], who: dict[str, str]) -> dict[str, Any]:
        key = (str(args.get("channel")), str(args.get("ts")))
        if key not in self.messages:
            return {"ok": False, "error": "message_not_found"}
        if "blocks" in args:
            check_blocks(args["blocks"])
        self.messages[key].update(text=args.get("text", ""), blocks=args.get("blocks"))
        return {"ok": True, "channel": key[0], "ts": key[1]}

    def _m_conversations_open(self, args: dict[str, Any], who: dict[str, str]) -> dict[str, Any]:
        users = str(args.get("users", ""))
        if not users:
            return {"ok": False, "error": "users_list_not_supplied"}
        if self.users and any(u not in self.users for u in users.split(",")):
            return {"ok": False, "error": "user_not_found"}
        return {"ok": True, "channel": {"id": "D" + users.replace(",", "")}}

    def _m_users_info(self, args: dict[str, Any], who: dict[str, str]) -> dict[str, Any]:
        user = self.users.get(str(args.get("user")))
        if user is None:
            return {"ok": False, "error": "user_not_found"}
        return {"ok": True, "user": user}

    def _m_files_info(self, args: dict[str, Any], who: dict[str, str]) -> dict[str, Any]:
        doc = self.files.get(str(args.get("file", "")))
        if doc is None:
            return {"ok": False, "error": "file_not_found"}
        return {"ok": True, "file": doc}

    def _use_trigger(self, args: dict[str, Any]) -> str | None:
        trigger = str(args.get("trigger_id", ""))
        issued = self._triggers.pop(trigger, None)
        if issued is None or time.monotonic() - issued > 3:
            return "expired_trigger_id"
        return None

    def _m_views_open(self, args: dict[str, Any], who: dict[str, str]) -> dict[str, Any]:
        problem = self._use_trigger(args)
        if problem:
            return {"ok": False, "error": problem}
        check_view(args.get("view"))
        view = args["view"] if isinstance(args["view"], dict) else json.loads(args["view"])
        return {"ok": True, "view": {"id": f"V{next(self._ts)}", **view}}

    def _m_views_update(self, args: dict[str, Any], who: dict[str, str]) -> dict[str, Any]:
        if not args.get("view_id") and not args.get("external_id"):
            return {"ok": False, "error": "not_found"}
        check_view(args.get("view"))
        return {"ok": True}

    def _oauth(self, args: dict[str, Any]) -> dict[str, Any]:
        if args.get("client_id") != self.client_id:
            return {"ok": False, "error": "invalid_client_id"}
        if args.get("client_secret") != self.client_secret:
            return {"ok": False, "error": "bad_client_secret"}
        grant = self.oauth_codes.pop(str(args.get("code")), None)
        if grant is None:
            return {"ok": False, "error": "invalid_code"}
        token = grant["access_token"]
        self.tokens[token] = {
            "team_id": grant["team"]["id"],
            "user_id": grant["bot_user_id"],
            "bot_id": "B" + token[-4:],
            "team": grant["team"]["name"],
        }
        return {"ok": True, **grant}

    def add_oauth_code(self, code: str, team_id: str, team_name: str, installer: str, token: str) -> None:
        """Make `code` exchangeable once for a bot token in team `team_id`, installed by `installer`."""
        self.oauth_codes[code] = {
            "access_token": token,
            "token_type": "bot",
            "scope": "commands,chat:write,im:write,users:read",
            "bot_user_id": "UBOT" + team_id,
            "app_id": "A1",
            "team": {"id": team_id, "name": team_name},
            "enterprise": None,
            "is_enterprise_install": False,
            "authed_user": {"id": installer, "scope": "", "access_token": None, "token_type": None},
        }


def _tasks_now(most: int = 40) -> str:
    """Each pending task of the running loop and where it waits: its innermost frame in clinicbot's
    own code and its innermost frame overall, so that a timeout in a loaded run says what the bot was
    doing instead of only that it was late."""
    lines = []
    for task in list(asyncio.all_tasks())[:most]:
        frames: list[FrameType] = []
        coro: Any = task.get_coro()
        while coro is not None and len(frames) < 100:  # the await chain, outermost first
            frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
            if frame is not None:
                frames.append(frame)
            coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
        ours = [f for f in frames if "site-packages" not in f.f_code.co_filename
                and "/lib/python" not in f.f_code.co_filename]
        where = " | ".join(f"{f.f_code.co_filename.rsplit('/', 2)[-1]}:{f.f_lineno} {f.f_code.co_name}"
                           for f in {id(f): f for f in (ours[-1:] + frames[-1:])}.values())
        lines.append(f"  {task.get_name()}: {where or '?'}")
    return "\n".join(lines)
