"""Microsoft Teams front end: POST /api/messages (botbuilder CloudAdapter), Adaptive Cards with
Universal Actions, proactive DMs, and admin consent from the chat (/consent/start, /consent/callback).

`setup_teams(app, settings)` mounts it all. Without MicrosoftAppId the endpoint still works but
accepts unauthenticated requests: the server says so loudly at start and on /readyz.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from aiohttp import web

from bot.keys import CORE, WARNINGS
from bot.notify import chat_notifier
from bot.teams.auth import build_auth
from bot.teams.bot import TeamsBot
from bot.teams.consent import ConsentOutcome, ConsentRoutes
from bot.teams.consent_flow import ConsentFlow
from bot.teams.endpoint import MessagesEndpoint
from bot.teams.notifier import TeamsNotifier
from bot.teams.proactive import ProactiveSender
from bot.teams.sender import TeamsSender
from bot.teams.turn_errors import on_turn_error
from sync.runtime.notifier import DeliveryError, Notification
from sync.runtime.settings import Settings

__all__ = ["AUTH_OFF_WARNING", "TEAMS", "setup_teams"]

log = logging.getLogger("clinicbot.teams")

AUTH_OFF_WARNING = (
    "Teams authentication is OFF: MicrosoftAppId is not set, so /api/messages accepts activities from "
    "anyone. Set MicrosoftAppId and MicrosoftAppPassword (and MicrosoftAppTenantId for SingleTenant) "
    "before exposing this server."
)

#: The wired Teams front end, for tests and the CLI.
TEAMS = web.AppKey("teams", object)


def setup_teams(app: web.Application, settings: Settings) -> str | None:
    """Mount the Teams routes; None when enabled, else why not."""
    from botbuilder.integration.aiohttp import CloudAdapter


    if settings.microsoft_app_type == "UserAssignedMSI":
        return "MicrosoftAppType=UserAssignedMSI is not supported; use MultiTenant or SingleTenant"
    if settings.microsoft_app_id and not settings.microsoft_app_password:
        return "MicrosoftAppId is set but MicrosoftAppPassword is not"
    if (
        settings.microsoft_app_type == "SingleTenant"
        and settings.microsoft_app_id
        and not settings.microsoft_app_tenant_id
    ):
        return "MicrosoftAppType=SingleTenant needs MicrosoftAppTenantId"

    core = app[CORE]
    auth = build_auth(settings)
    adapter = CloudAdapter(auth)
    adapter.on_turn_error = on_turn_error
    sender = ProactiveSender(adapter, settings.microsoft_app_id or "")
    flow = ConsentFlow(core, settings)
    bot = TeamsBot(core, sender, flow)
    endpoint = MessagesEndpoint(adapter, bot)
    notifier = TeamsNotifier(core, sender)
    core.services.notifiers["teams"] = notifier

    chat_notifier(core).senders["teams"] = TeamsSender(core, sender)

    async def announce(outcome: ConsentOutcome) -> None:
        note = Notification(
            kind="consent_result",
            practice_id=outcome.practice_id,
            chat_identity_id=outcome.chat_identity_id,
            data={
                "granted": outcome.granted,
                "tenant_id": outcome.tenant_id,
                "error_code": outcome.error_code,
                "explanation": outcome.explanation,
            },
        )
        try:
            await notifier.notify(note)
        except DeliveryError as exc:
            log.warning("could not tell the admin the consent outcome", extra={"error": str(exc)})

    app.router.add_post("/api/messages", endpoint.handle)
    ConsentRoutes(core, settings, announce, flow.tenant_of).mount(app)
    app[TEAMS] = endpoint

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        yield
        await endpoint.drain()
        await auth.close()

    app.cleanup_ctx.append(lifecycle)
    if not settings.teams_auth_enabled:
        log.warning("!" * 20 + " " + AUTH_OFF_WARNING + " " + "!" * 20)
        app[WARNINGS].append(AUTH_OFF_WARNING)
    return None
