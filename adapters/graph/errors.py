"""Graph and MSAL failures mapped onto the shared error tree (sync/contract/).

Graph errors are {"error": {"code", "message", "innerError"}}. Only the code goes into our
messages: Graph's own messages can quote request content, and logs never carry PHI.
"""

from __future__ import annotations

from typing import Any

import httpx

from adapters.kit.http import parse_retry_after
from sync.contract import (
    AlreadyExists,
    AuthExpired,
    BadPayload,
    CursorExpired,
    NotFound,
    ProviderError,
    RateLimited,
    Refused,
    Unavailable,
    WrongEtag,
)

__all__ = ["PROVIDER", "error_code", "graph_error", "msal_error", "response_error"]

PROVIDER = "graph"
#: Delta-token failures: 410 Gone, or 400 with one of these codes (directory resources).
CURSOR_CODES = frozenset({"syncstatenotfound", "syncstateinvalid", "resyncrequired", "invaliddeltatoken"})
#: MSAL/AAD errors after which only a new sign-in (or a new admin consent / secret) helps.
REAUTH_ERRORS = frozenset(
    {
        "invalid_grant",
        "interaction_required",
        "consent_required",
        "login_required",
        "invalid_client",
        "unauthorized_client",
        "no_account",
    }
)


def error_code(body: Any) -> str:
    """The Graph error code in a response body, or ""."""
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return str(body["error"].get("code") or "")
    return ""


def graph_error(
    status: int, body: Any, headers: dict[str, str] | httpx.Headers, what: str, *, creating: bool = False
) -> ProviderError:
    """Map one failed Graph answer (a response or a $batch item) onto the error tree."""
    code = error_code(body)
    label = f"{PROVIDER}: HTTP {status} {code or '-'} on {what}"
    lowered = {k.lower(): v for k, v in dict(headers).items()}
    if status == 401:
        return AuthExpired(label, provider=PROVIDER)
    if code.lower() in CURSOR_CODES or (status == 410 and not creating and "/delta" in what):
        return CursorExpired(label, provider=PROVIDER)
    if status == 403:
        return Refused(label, provider=PROVIDER)
    if status in (404, 410):
        return NotFound(label, provider=PROVIDER)
    if status == 409:
        return AlreadyExists(label, provider=PROVIDER)
    if status == 412:
        return AlreadyExists(label, provider=PROVIDER) if creating else WrongEtag(label, provider=PROVIDER)
    if status == 429 or (status == 503 and "retry-after" in lowered):
        return RateLimited(label, retry_after=parse_retry_after(lowered.get("retry-after")), provider=PROVIDER)
    if status >= 500:
        return Unavailable(label, provider=PROVIDER)
    return BadPayload(label, provider=PROVIDER)


def response_error(response: httpx.Response, *, creating: bool = False) -> ProviderError:
    """Map a failed httpx response from Graph."""
    try:
        body = response.json()
    except ValueError:
        body = None
    what = f"{response.request.method} {response.request.url.path}"
    return graph_error(response.status_code, body, response.headers, what, creating=creating)


def msal_error(result: dict[str, Any] | None, what: str) -> ProviderError:
    """Map an MSAL result dict carrying "error" (or None: no usable account) onto the tree."""
    if not result:
        return AuthExpired(f"{PROVIDER}: no cached sign-in for {what}; reconnect", provider=PROVIDER)
    error = str(result.get("error") or "unknown")
    codes = ",".join(str(c) for c in result.get("error_codes") or [])
    label = f"{PROVIDER}: sign-in failed on {what}: {error} {codes}".strip()
    if error in REAUTH_ERRORS:
        return AuthExpired(label, provider=PROVIDER)
    if error in ("temporarily_unavailable", "server_error"):
        return Unavailable(label, provider=PROVIDER)
    return Refused(label, provider=PROVIDER)
