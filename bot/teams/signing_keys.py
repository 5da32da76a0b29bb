"""The Bot Framework signing keys inbound tokens are checked against, fetched without blocking.

botbuilder's own `_OpenIdMetadata` fetches the OpenID metadata and the JWKS with a blocking
`requests.get` (no timeout) inside the event loop, and fetches again on every request while the
fetch keeps failing: a slow or failing metadata endpoint plus a handful of forged tokens froze
the whole server. `install()` puts `SigningKeys` in its place (botbuilder looks the metadata up
by URL in `JwtTokenExtractor.metadataCache`), which:

* fetches with httpx, asynchronously, under one total timeout, one fetch at a time per URL;
* keeps the keys for a day, and keeps using them when a refresh fails;
* after a failure backs off (1 s doubling to 5 minutes) instead of fetching per request;
* refetches for an unknown key id at most every 5 minutes, so random `kid`s cost nothing.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

import httpx
from botframework.connector.auth import JwtTokenExtractor
from jwt.algorithms import RSAAlgorithm

__all__ = ["FETCH_TIMEOUT", "SigningKeys", "SigningKeysUnavailable", "install"]

log = logging.getLogger("clinicbot.teams.auth")

#: Total time for the metadata document and the key set together.
FETCH_TIMEOUT = 5.0
KEEP_FOR = 24 * 3600.0
UNKNOWN_KID_EVERY = 300.0
BACKOFF_FIRST, BACKOFF_MAX = 1.0, 300.0
#: A key set is a handful of keys; anything bigger is not one.
MAX_BODY = 256 * 1024


class SigningKeysUnavailable(ConnectionError):
    """The signing keys could not be fetched (and none are cached): the token cannot be checked now."""


@dataclass(frozen=True, slots=True)
class _Key:
    """What botbuilder's JwtTokenExtractor reads from a metadata lookup."""

    public_key: Any
    endorsements: list[str]


class SigningKeys:
    """The keys behind one OpenID metadata URL, in botbuilder's `_OpenIdMetadata` shape (`await get(kid)`)."""

    def __init__(self, url: str, timeout: float = FETCH_TIMEOUT) -> None:
        self.url = url
        self.timeout = timeout
        self.keys: dict[str, _Key] = {}
        self.fetched_at = float("-inf")
        self._tried_at = float("-inf")
        self._retry_at = float("-inf")
        self._backoff = BACKOFF_FIRST
        self._lock: asyncio.Lock | None = None
        self._lock_loop: asyncio.AbstractEventLoop | None = None

    async def get(self, key_id: str | None) -> _Key:
        """The key for `key_id`: PermissionError for an unknown key, SigningKeysUnavailable when none can be had."""
        now = time.monotonic()
        if now - self.fetched_at > KEEP_FOR:
            await self._refresh()
        key = self.keys.get(key_id or "")
        if key is None and self.keys and time.monotonic() - self._tried_at > UNKNOWN_KID_EVERY:
            await self._refresh()
            key = self.keys.get(key_id or "")
        if key is not None:
            return key
        if not self.keys:
            raise SigningKeysUnavailable(f"no signing keys from {self.url} yet")
        raise PermissionError("the token is signed with an unknown key")

    def _loop_lock(self) -> asyncio.Lock:
        # One process may run several loops over its life (tests, the CLI): a lock belongs to one.
        loop = asyncio.get_running_loop()
        if self._lock is None or self._lock_loop is not loop:
            self._lock, self._lock_loop = asyncio.Lock(), loop
        return self._lock

    async def _refresh(self) -> None:
        started = time.monotonic()
        async with self._loop_lock():
            if self._tried_at >= started or time.monotonic() < self._retry_at:
                return  # another request refreshed (or failed) while this one waited, or backing off
            self._tried_at = time.monotonic()
            try:
                keys = await asyncio.wait_for(self._fetch(), self.timeout)
            except (httpx.HTTPError, TimeoutError, ValueError, KeyError, TypeError) as exc:
                self._retry_at = time.monotonic() + self._backoff
                log.warning(
                    "cannot fetch Bot Framework signing keys",
                    extra={"url": self.url, "error": type(exc).__name__, "retry_in": self._backoff,
                           "cached_keys": len(self.keys)},
                )
                self._backoff = min(self._backoff * 2, BACKOFF_MAX)
                return
            self.keys, self.fetched_at, self._backoff = keys, time.monotonic(), BACKOFF_FIRST

    async def _fetch(self) -> dict[str, _Key]:
        async with httpx.AsyncClient(timeout=self.timeout, follow_redirects=False) as client:
            metadata = await _get_json(client, self.url)
            jwks = await _get_json(client, str(metadata["jwks_uri"]))
        found: dict[str, _Key] = {}
        for jwk in jwks["keys"]:
            if not isinstance(jwk, dict) or not isinstance(jwk.get("kid"), str):
                continue
            endorsements = jwk.get("endorsements") or []
            found[jwk["kid"]] = _Key(
                RSAAlgorithm.from_jwk(json.dumps(jwk)),
                [e for e in endorsements if isinstance(e, str)] if isinstance(endorsements, list) else [],
            )
        return found


async def _get_json(client: httpx.AsyncClient, url: str) -> dict[str, Any]:
    response = await client.get(url)
    response.raise_for_status()
    if len(response.content) > MAX_BODY:
        raise ValueError(f"{url} answered {len(response.content)} bytes")
    body = response.json()
    if not isinstance(body, dict):
        raise ValueError(f"{url} did not answer a JSON object")
    return body


class _Cache(dict[str, Any]):
    """`JwtTokenExtractor.metadataCache`, handing out SigningKeys for every metadata URL."""

    def get(self, url: str, default: Any = None) -> Any:  # type: ignore[override]
        found = super().get(url)
        if found is None:
            found = self[url] = SigningKeys(url)
        return found


def install() -> None:
    """Make botbuilder's token checks use SigningKeys (idempotent; process-wide, as botbuilder's cache is)."""
    if not isinstance(JwtTokenExtractor.metadataCache, _Cache):
        JwtTokenExtractor.metadataCache = _Cache()
