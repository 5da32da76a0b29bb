"""The Salesforce REST client: the org's instance URL, Salesforce's error list, SOQL paging, limits.

Salesforce answers errors as a JSON list of {message, errorCode, fields}. Mapped here:
`INVALID_SESSION_ID` (401) is an expired session: the bearer auth refreshes once and retries, and
a second 401 is AuthExpired (reconnect); `REQUEST_LIMIT_EXCEEDED` (403, the org's rolling 24-hour
API allowance) is RateLimited with a long wait (`LIMIT_WAIT`), and 429 / 503 with Retry-After
honour it; `NOT_FOUND` / `ENTITY_IS_DELETED` are NotFound; 300 (an external id matching several
records) and other 400s are Refused with Salesforce's words. SOQL results come a batch at a time:
`done: false` and `nextRecordsUrl` (an absolute path on the instance) fetch the next one.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import httpx

from adapters.kit.http import RetryPolicy, json_body, make_client, parse_retry_after, send
from sync.contract import AuthExpired, BadPayload, NotFound, ProviderError, RateLimited, Refused, Unavailable

__all__ = ["LIMIT_WAIT", "PROVIDER", "SalesforceClient", "map_salesforce_error", "soql_quote"]

PROVIDER = "salesforce"
#: The org's daily API allowance is a rolling 24 hours: look again in ten minutes, not sooner.
LIMIT_WAIT = 600.0
#: SOQL batches followed at most in one query (a loop guard: 2,000 rows a batch).
MAX_BATCHES = 500
_USAGE = re.compile(r"api-usage=(\d+)/(\d+)")


def soql_quote(value: str) -> str:
    """A SOQL string literal: quotes and backslashes escaped, so a value cannot change the query."""
    escaped = value.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n").replace("\r", "\\r")
    return f"'{escaped}'"


def _errors(response: httpx.Response) -> list[dict[str, Any]]:
    try:
        body = response.json()
    except ValueError:
        return []
    if isinstance(body, dict):
        body = [body]
    return [e for e in body if isinstance(e, dict)] if isinstance(body, list) else []


def map_salesforce_error(response: httpx.Response) -> ProviderError:
    status = response.status_code
    errors = _errors(response)
    codes = [str(e.get("errorCode") or "") for e in errors]
    message = "; ".join(str(e.get("message") or "")[:200] for e in errors)[:400]
    what = f"salesforce: HTTP {status} {codes[0] if codes else 'error'} on {response.request.method} " \
           f"{response.request.url.path}"
    if message:
        what += f": {message}"
    if status == 401 or "INVALID_SESSION_ID" in codes:
        return AuthExpired(what, provider=PROVIDER)
    if "REQUEST_LIMIT_EXCEEDED" in codes:
        return RateLimited(what, retry_after=parse_retry_after(response.headers.get("Retry-After")) or LIMIT_WAIT,
                           provider=PROVIDER)
    if status in (429, 503) and response.headers.get("Retry-After"):
        return RateLimited(what, retry_after=parse_retry_after(response.headers.get("Retry-After")),
                           provider=PROVIDER)
    if "external ID field" in message:
        # The org lacks the field (or the user may not see it): a setup step, not a missing record.
        refused = Refused(what, provider=PROVIDER)
        refused.user_message = ("Salesforce has no visit-key field on Activity yet: your Salesforce admin adds "
                                "the External ID field (see `connect salesforce`)")
        return refused
    if status == 404 or "NOT_FOUND" in codes or "ENTITY_IS_DELETED" in codes:
        return NotFound(what, provider=PROVIDER)
    if status >= 500:
        return Unavailable(what, provider=PROVIDER)
    refused = Refused(what, provider=PROVIDER)
    refused.user_message = f"Salesforce refused: {message or 'bad request'}"
    return refused


class SalesforceClient:
    """JSON calls to one org's REST API (`<instance>/services/data/<version>`)."""

    def __init__(self, instance_url: str, version: str, token: str | httpx.Auth, *,
                 transport: httpx.AsyncBaseTransport | None = None, policy: RetryPolicy | None = None) -> None:
        if not token:
            raise AuthExpired("salesforce: the connection has no token", provider=PROVIDER)
        if not instance_url:
            raise AuthExpired("salesforce: the connection has no instance URL; reconnect", provider=PROVIDER)
        auth = token if isinstance(token, httpx.Auth) else None
        headers = {} if auth is not None else {"Authorization": f"Bearer {token}"}
        self.root = f"/services/data/{version}"
        self._http = make_client(instance_url, transport=transport, policy=policy or RetryPolicy(), headers=headers,
                                 auth=auth)
        self.calls = 0
        #: The org's API allowance as its last answer told it (`Sforce-Limit-Info: api-usage=used/max`).
        self.usage: tuple[int, int] | None = None

    def _note_usage(self, response: httpx.Response) -> None:
        found = _USAGE.search(response.headers.get("Sforce-Limit-Info", ""))
        if found:
            self.usage = (int(found.group(1)), int(found.group(2)))

    async def request(self, method: str, path: str, *, params: dict[str, str] | None = None,
                      json: dict[str, Any] | None = None) -> tuple[int, Any]:
        """(status, JSON body) of a call; `path` is under the API root unless it starts with /services."""
        if self.usage is not None and self.usage[0] >= self.usage[1]:
            # The allowance is spent: asking would only be refused (and counted against the org).
            raise RateLimited(f"salesforce: the org's API allowance is spent ({self.usage[0]}/{self.usage[1]})",
                              retry_after=LIMIT_WAIT, provider=PROVIDER)
        self.calls += 1
        url = path if path.startswith("/services/") else f"{self.root}{path}"
        response = await send(self._http, PROVIDER, method, url, errors=map_salesforce_error, params=params,
                              json=json)
        self._note_usage(response)
        if response.status_code == 300:
            raise Refused("salesforce: the external id matches several records", provider=PROVIDER)
        return response.status_code, json_body(response, PROVIDER, empty={})

    async def query(self, soql: str, *, all_rows: bool = False) -> AsyncIterator[dict[str, Any]]:
        """Every record of a SOQL query (`queryAll` includes deleted ones), batch by batch."""
        _, body = await self.request("GET", "/queryAll" if all_rows else "/query", params={"q": soql})
        for _ in range(MAX_BATCHES):
            if not isinstance(body, dict):
                raise BadPayload("salesforce: a query answer is not an object", provider=PROVIDER)
            for record in body.get("records") or []:
                if isinstance(record, dict):
                    yield record
            following = body.get("nextRecordsUrl")
            if body.get("done", True) or not following:
                return
            if not str(following).startswith("/services/data/"):
                raise BadPayload("salesforce: nextRecordsUrl is not on the instance", provider=PROVIDER)
            _, body = await self.request("GET", str(following))
        raise BadPayload(f"salesforce: a query longer than {MAX_BATCHES} batches", provider=PROVIDER)

    async def aclose(self) -> None:
        await self._http.aclose()
