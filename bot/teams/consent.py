"""Admin consent from the chat: the consent link, the browser round trip and the outcome.

Flow: an admin sends `connect outlook` -> a card with "Grant admin consent" pointing at
`/consent/start?state=S` (S is single-use, expires in 10 minutes and is bound to that admin) ->
`/consent/start` ties the state to this browser with an HttpOnly cookie and redirects to Entra's
`{login}/{tenant}/adminconsent` -> Entra redirects to `/consent/callback` with `admin_consent`
and `tenant`, or `error` and `error_description` (AADSTS code) -> we record a ConsentGrant and DM
the admin the outcome in plain words.

The cookie is what makes a state "belong" to the person who started it: a callback carrying a
state that this browser did not start (a link forwarded to, or replayed by, someone else) is
refused, exactly like a replayed or expired state.
"""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlencode

from aiohttp import web

from sync.integrations import consent, registry
from sync.runtime.core import Core
from sync.runtime.settings import Settings
from sync.services.consent import check_consent_state, record_consent

__all__ = ["AADSTS_HELP", "ConsentOutcome", "ConsentRoutes", "consent_url", "explain_error", "start_url"]

log = logging.getLogger("clinicbot.teams.consent")

PURPOSE = "consent"
COOKIE = "clinicbot_consent"

#: AADSTS codes an admin meets on the consent screen, in plain words.
AADSTS_HELP: dict[str, str] = {
    "AADSTS65004": "The consent was declined on the Microsoft sign-in page, so clinicbot still cannot read "
    "calendars. Send `connect outlook` again and choose Accept.",
    "AADSTS90094": "The account used may not grant consent for the whole organisation. Sign in with "
    "a Global Administrator or Privileged Role Administrator account.",
    "AADSTS90008": "Your organisation requires an administrator to approve this app. Sign in with a Global "
    "Administrator account, or ask your IT admin to grant consent.",
    "AADSTS50020": "The account used belongs to a different organisation than this clinic's Microsoft 365 "
    "tenant. Sign in with an admin account of the clinic's own organisation.",
    "AADSTS700016": "Microsoft does not know clinicbot's app id in this organisation: the app id is wrong or "
    "the app registration was deleted. Check MicrosoftAppId / CLINICBOT_GRAPH_CLIENT_ID.",
    "AADSTS50011": "The reply address does not match the app registration. Add {callback} as a redirect "
    "URI of the app in Entra ID.",
    "AADSTS650056": "The app registration is misconfigured (no permissions requested or a permission is "
    "missing). Check the API permissions of the app in Entra ID.",
    "AADSTS50105": "Your account is not assigned to this app. Ask your IT admin to assign you or to grant "
    "consent.",
}


def explain_error(code: str | None, description: str | None, callback: str = "") -> str:
    """Plain words for an Entra error, falling back to its own description."""
    found = code if code and code.startswith("AADSTS") else None
    if not found and description:
        m = re.search(r"AADSTS[0-9]+", description)
        found = m.group(0) if m else None
    if found and found in AADSTS_HELP:
        return AADSTS_HELP[found].replace("{callback}", callback)
    if code == "access_denied":
        return AADSTS_HELP["AADSTS65004"]
    first = (description or code or "unknown error").splitlines()[0][:300]
    return f"Microsoft reported an error: {first}"


def callback_url(settings: Settings) -> str:
    return f"{settings.base_url()}/consent/callback"


def start_url(settings: Settings, state: str) -> str:
    """What the card's button opens: our own start page, which then redirects to Entra."""
    return f"{settings.base_url()}/consent/start?{urlencode({'state': state})}"


def consent_url(settings: Settings, tenant: str | None, state: str) -> str:
    """Entra's admin-consent URL for the clinic's tenant ("organizations" while it is unknown)."""
    client_id = registry.consent_client_id(settings) or settings.microsoft_app_id or ""
    query = urlencode({"client_id": client_id, "redirect_uri": callback_url(settings), "state": state})
    return f"{settings.login_url}/{tenant or 'organizations'}/adminconsent?{query}"


@dataclass(frozen=True, slots=True)
class ConsentOutcome:
    """What the admin is told after the round trip."""

    practice_id: int
    chat_identity_id: int | None
    granted: bool
    tenant_id: str | None
    error_code: str | None
    explanation: str


#: Sends the outcome to the admin (the Teams notifier); must not raise for a delivery problem.
Announce = Callable[[ConsentOutcome], Awaitable[None]]


class ConsentRoutes:
    """GET /consent/start and GET /consent/callback."""

    def __init__(
        self,
        core: Core,
        settings: Settings,
        announce: Announce,
        tenant_of: Callable[[int], Awaitable[str | None]],
    ) -> None:
        self.core = core
        self.settings = settings
        self.announce = announce
        self.tenant_of = tenant_of

    def mount(self, app: web.Application) -> None:
        app.router.add_get("/consent/start", self.start)
        app.router.add_get("/consent/callback", self.callback)

    async def start(self, request: web.Request) -> web.StreamResponse:
        """Check the state, bind it to this browser, and send the admin on to Entra."""
        state = request.query.get("state", "")
        row = await check_consent_state(self.core, state, purpose=PURPOSE)
        if isinstance(row, str):
            return _page(400, "This consent link cannot be used", row)
        tenant = await self.tenant_of(row.practice_id)
        response = web.HTTPFound(consent_url(self.settings, tenant, state))
        response.set_cookie(
            COOKIE,
            state,
            max_age=int(consent.CONSENT_TTL.total_seconds()),
            path="/consent",
            httponly=True,
            samesite="Lax",
            secure=request.secure or request.headers.get("X-Forwarded-Proto") == "https",
        )
        return response

    async def callback(self, request: web.Request) -> web.StreamResponse:
        """Entra's redirect: record the outcome once and tell the admin."""
        q = request.query
        state = q.get("state", "")
        if not state:
            return _page(
                400, "Consent response without state", "Start again from the chat with `connect outlook`."
            )
        usable = await check_consent_state(self.core, state, purpose=PURPOSE)
        if isinstance(usable, str):
            return _page(400, "This consent link cannot be used", usable)
        if request.cookies.get(COOKIE) != state:
            log.warning("consent callback from a browser that did not start it")
            return _page(
                400,
                "This consent response is not yours",
                "It was started by someone else or in another browser. Start again from the chat "
                "with `connect outlook`.",
            )
        granted = q.get("admin_consent", "").lower() == "true" and "error" not in q
        error_code = None if granted else (q.get("error") or "unknown_error")
        description = None if granted else q.get("error_description", "")
        aadsts = re.search(r"AADSTS[0-9]+", description or "")
        if aadsts:
            error_code = aadsts.group(0)
        tenant = q.get("tenant")
        try:
            recorded = await record_consent(
                self.core, state, purpose=PURPOSE, granted=granted, tenant=tenant, error_code=error_code,
                error_description=description, tenant_of=self.tenant_of, actor="teams:consent",
            )
        except consent.ConsentError as exc:
            return _page(400, "This consent link cannot be used", str(exc))
        granted, error_code, description = recorded.granted, recorded.error_code, recorded.error_description
        if granted:
            explanation = (
                "Admin consent granted: clinicbot can now connect Outlook calendars in your organisation."
            )
        elif error_code == "wrong_tenant":
            explanation = (
                "Consent was given in another organisation than the clinic's Microsoft 365 tenant, so "
                "it does not count. Sign in with an admin account of the clinic's organisation."
            )
        else:
            explanation = explain_error(error_code, description, callback_url(self.settings))
        log.info("admin consent outcome", extra={"granted": granted, "error_code": error_code})
        await self.announce(
            ConsentOutcome(
                recorded.practice_id, recorded.chat_identity_id, granted, tenant, error_code, explanation
            )
        )
        response = _page(200, "Consent granted" if granted else "Consent not granted", explanation)
        response.del_cookie(COOKIE, path="/consent")
        return response


def _page(status: int, title: str, text: str) -> web.Response:
    body = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head>"
        f"<body><h1>{html.escape(title)}</h1><p>{html.escape(text)}</p>"
        "<p>You can close this window and return to Teams.</p></body></html>"
    )
    return web.Response(status=status, text=body, content_type="text/html")
