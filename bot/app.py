"""The aiohttp server: `build_app(settings)` wires the core, the front ends and the routes.

No module-level state and no work at import: everything is created in `build_app` and the
startup hooks, so tests build as many independent servers as they like.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import logging
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

from adapters.kit.http import default_ssl_context
from bot.alarm_alerts import setup_alarm_alerts
from bot.conflict_alerts import setup_conflict_alerts
from bot.http.files import setup_files
from bot.http.lead_confirm import setup_lead_confirm
from bot.http.oauth import setup_oauth
from bot.http.sms import setup_sms
from bot.http.unsubscribe import setup_unsubscribe
from bot.http.webhooks import setup_webhooks
from bot.keys import CORE, METRICS, SETTINGS, SLACK, STATUS, WARNINGS
from bot.logs import request_id
from bot.scheduling import setup_scheduler
from bot.slack import setup_slack
from bot.sync_component import setup_sync
from bot.teams import setup_teams
from sync.boot import open_core
from sync.integrations.push_channels import warm_channels
from sync.runtime.core import Core
from sync.runtime.settings import Settings
from sync.store.database import StoreError
from sync.store.migrate import prepare_database as migrate_if_allowed
from sync.store.migrate import schema_state

__all__ = ["COMPONENTS", "CORE", "build_app", "prepare_database"]

log = logging.getLogger("clinicbot.app")


#: A component mounts routes and startup work; it returns None when enabled or a reason it is off.
Component = Callable[[web.Application, Settings], str | None]


def _components() -> list[tuple[str, Component]]:
    """The front ends and integrations, in the order they are mounted."""
    comps: list[tuple[str, Component]] = [
        ("sync", setup_sync), ("webhooks", setup_webhooks), ("oauth", setup_oauth), ("teams", setup_teams),
        ("slack", setup_slack), ("conflict_alerts", setup_conflict_alerts), ("unsubscribe", setup_unsubscribe),
        ("files", setup_files),
        ("sms", setup_sms),
        ("lead_confirm", setup_lead_confirm),
    ]
    comps.append(("scheduler", setup_scheduler))
    comps.append(("alarms", setup_alarm_alerts))
    return comps


COMPONENTS = _components


async def prepare_database(core: Core) -> None:
    """Bring SQLite up to date (when allowed); refuse a PostgreSQL schema that is behind."""
    await migrate_if_allowed(core.store, auto_migrate=core.settings.auto_migrate)


def tune_for_serving(app: web.Application) -> None:
    """Settings for a long-running server process (`clinicbot serve`), not for tests.

    Once started, everything loaded so far (modules, settings, the app) lives as long as the
    process: `gc.freeze()` moves it out of the cyclic garbage collector's view, so its full
    collections stop walking hundreds of thousands of permanent objects and cost less than a
    millisecond instead of tens, which otherwise show up as latency spikes under load. The webhook
    channels and replay memory of every subscribed connection are read ahead in the background, so a
    burst of deliveries arriving as the server starts does not wait for those reads.
    """

    async def freeze(_: web.Application) -> None:
        gc.collect()
        gc.freeze()

    async def warm(app: web.Application) -> None:
        warm_channels(app[CORE])

    app.on_startup.append(freeze)
    app.on_startup.append(warm)


def _request_context() -> Callable[..., Awaitable[web.StreamResponse]]:
    """The middleware: request id (given or new), metrics, a debug line, and a JSON 500 for crashes."""
    # New ids: a random per-app prefix and a counter (unique, and cheaper than uuid4 per request).
    prefix = uuid.uuid4().hex[:8]
    counter = itertools.count(1)

    @web.middleware
    async def middleware(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        rid = request.headers.get("X-Request-Id", "")[:64] or f"{prefix}{next(counter):08x}"
        token = request_id.set(rid)
        started = time.perf_counter()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            response.headers["X-Request-Id"] = rid
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        except Exception:
            log.exception("unhandled error", extra={"path": request.path})
            return web.json_response({"error": "internal error", "request_id": rid}, status=500)
        finally:
            resource = request.match_info.route.resource
            route = resource.canonical if resource else "unmatched"
            request.app[METRICS][(route, status)] += 1
            if log.isEnabledFor(logging.DEBUG):
                log.debug("request", extra={"method": request.method, "route": route, "status": status,
                                            "ms": round((time.perf_counter() - started) * 1000, 2)})
            request_id.reset(token)

    return middleware


class _ClientMistakes(logging.Filter):
    """aiohttp logs a malformed request (an over-long header line, a bad request line) at ERROR with
    a traceback; it is the client's mistake, answered 400, so it is logged once at INFO instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        from aiohttp.http_exceptions import BadHttpMessage

        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, BadHttpMessage):
            record.msg, record.args = "refused a malformed HTTP request: %s", (type(error).__name__,)
            record.levelno, record.levelname, record.exc_info, record.exc_text = logging.INFO, "INFO", None, None
        return True


_CLIENT_MISTAKES = _ClientMistakes()


async def _healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def _readyz(request: web.Request) -> web.Response:
    core = request.app[CORE]
    body: dict[str, object] = {"components": request.app[STATUS], "warnings": request.app[WARNINGS]}
    try:
        state = await schema_state(core.store)
    except StoreError as exc:
        body.update(status="unavailable", database=str(exc))
        return web.json_response(body, status=503)
    body["schema"] = {"current": state.current, "head": state.head}
    if not state.up_to_date:
        body.update(status="unavailable", database="schema is not current: run `clinicbot db upgrade`")
        return web.json_response(body, status=503)
    body.update(status="ready", database="ok")
    return web.json_response(body)


async def _metrics(request: web.Request) -> web.Response:
    lines = ["# TYPE clinicbot_http_requests_total counter"]
    for (route, status), n in sorted(request.app[METRICS].items()):
        lines.append(f'clinicbot_http_requests_total{{route="{route}",status="{status}"}} {n}')
    slack = request.app.get(SLACK)
    if slack is not None:  # what the Slack answer cache is worth under this server's real traffic
        answers = slack.listeners.answers
        lines.append("# TYPE clinicbot_answer_cache_lookups_total counter")
        lines.append(f'clinicbot_answer_cache_lookups_total{{front_end="slack",result="hit"}} {answers.hits}')
        lines.append(f'clinicbot_answer_cache_lookups_total{{front_end="slack",result="miss"}} {answers.misses}')
        lines.append("# TYPE clinicbot_background_pending gauge")
        for queue in (slack.background, slack.modals):  # work queued after acks, not started yet
            lines.append(f'clinicbot_background_pending{{queue="{queue.name}"}} {queue.pending}')
    return web.Response(text="\n".join(lines) + "\n", content_type="text/plain")


def build_app(settings: Settings, core: Core | None = None) -> web.Application:
    """The whole server as an aiohttp Application; pass `core` to share one with a test."""
    app = web.Application(middlewares=[_request_context()], client_max_size=2 * 1024 * 1024)
    logging.getLogger("aiohttp.server").addFilter(_CLIENT_MISTAKES)  # the same object: added once
    app[SETTINGS] = settings
    app[METRICS] = Counter()
    app[WARNINGS] = []
    app[STATUS] = {}
    the_core = core or open_core(settings)
    app[CORE] = the_core

    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/readyz", _readyz)
    app.router.add_get("/metrics", _metrics)

    for name, component in COMPONENTS():
        reason = component(app, settings)
        app[STATUS][name] = "enabled" if reason is None else f"disabled: {reason}"
        if reason is not None:
            log.info("%s is disabled: %s", name, reason)

    async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
        await prepare_database(app[CORE])
        # The shared TLS context, built off the loop: built on it, it held up requests for ~100 ms.
        await asyncio.to_thread(default_ssl_context)
        yield
        if core is None:
            await app[CORE].close()

    app.cleanup_ctx.insert(0, _lifecycle)
    return app
