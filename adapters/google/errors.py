"""Google API failures mapped onto the shared error tree in sync.contract.

Google puts the cause in the JSON body (`error.errors[0].reason`); the HTTP status alone cannot tell
a rate limit (403 rateLimitExceeded) from a permission problem (403 forbidden), nor an expired sync
token (410 fullSyncRequired) from a deleted event (410 deleted).
"""

from __future__ import annotations

import httpx

from adapters.kit.http import parse_retry_after
from sync.contract import (
    AlreadyExists,
    AuthExpired,
    CursorExpired,
    NotFound,
    NotGranted,
    ProviderError,
    RateLimited,
    Refused,
    Unavailable,
    WrongEtag,
)

__all__ = ["RATE_LIMIT_REASONS", "google_reason", "map_google_error"]

PROVIDER = "google"
RATE_LIMIT_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded"})
QUOTA_REASONS = frozenset({"quotaExceeded", "dailyLimitExceeded"})
#: 403 "Request had insufficient authentication scopes": the grant lacks the API's scope.
SCOPE_REASONS = frozenset({"insufficientPermissions", "ACCESS_TOKEN_SCOPE_INSUFFICIENT"})


def google_reason(response: httpx.Response) -> str | None:
    """The first `reason` of a Google error body, or None when the body is not one."""
    try:
        body = response.json()
        reason = body["error"]["errors"][0]["reason"]
    except (ValueError, KeyError, IndexError, TypeError):
        return None
    return reason if isinstance(reason, str) else None


def _message(response: httpx.Response) -> str:
    try:
        message = response.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        return ""
    return str(message)[:200]


def map_google_error(response: httpx.Response) -> ProviderError:
    """The shared error for a failed Google Calendar response (status >= 400)."""
    status, reason = response.status_code, google_reason(response)
    what = f"google: HTTP {status} {reason or ''} on {response.request.method}".replace("  ", " ")
    retry_after = parse_retry_after(response.headers.get("Retry-After"))
    if status == 401:
        return AuthExpired(what, provider=PROVIDER)
    if status == 429 or (status == 403 and reason in RATE_LIMIT_REASONS | QUOTA_REASONS):
        return RateLimited(what, retry_after=retry_after, provider=PROVIDER)
    if status == 403 and reason in SCOPE_REASONS:
        return NotGranted(what, provider=PROVIDER)
    if status == 404:
        return NotFound(what, provider=PROVIDER)
    if status == 409:
        return AlreadyExists(what, provider=PROVIDER)
    if status == 410:
        if reason == "fullSyncRequired":
            return CursorExpired(what, provider=PROVIDER)
        return NotFound(what, provider=PROVIDER)
    if status == 412:
        return WrongEtag(what, provider=PROVIDER)
    if status >= 500:
        if retry_after is not None:
            return RateLimited(what, retry_after=retry_after, provider=PROVIDER)
        return Unavailable(what, provider=PROVIDER)
    # 400 and 403 (other than throttling): Google refused what we asked; its message says why.
    return Refused(f"{what}: {_message(response)}", provider=PROVIDER)
