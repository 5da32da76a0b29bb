"""Slack request signing (v0 HMAC-SHA256), checked before anything else reads the request.

Slack signs `v0:<X-Slack-Request-Timestamp>:<raw body>` with the app's signing secret and sends
`v0=<hex>` in X-Slack-Signature. We refuse (401) a missing or wrong signature, a timestamp more than
five minutes from now, and a request we have already accepted (same signature: a replay). Slack's
own retries are re-signed with a new timestamp, so they are not replays.

The replay memory is per process and bounded; each replica of a scaled-out deployment keeps its own.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections import OrderedDict

__all__ = ["MAX_AGE", "RequestVerifier", "sign"]

MAX_AGE = 5 * 60


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The v0 signature of a request (what Slack sends, and what tests send)."""
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


class RequestVerifier:
    def __init__(self, signing_secret: str, max_remembered: int = 200_000) -> None:
        self._secret = signing_secret.encode()
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._max = max_remembered

    def check(
        self, timestamp: str | None, signature: str | None, body: bytes, now: float | None = None
    ) -> str | None:
        """None when the request is genuine and new; otherwise the reason it is refused."""
        if not timestamp or not signature:
            return "missing signature"
        # isascii: isdigit() alone accepts "¹765000000", which int() then refuses.
        if not (timestamp.isascii() and timestamp.isdigit()) or len(timestamp) > 12:
            return "bad timestamp"
        clock = time.time() if now is None else now
        if abs(clock - int(timestamp)) > MAX_AGE:
            return "stale timestamp"
        base = b"v0:" + timestamp.encode() + b":" + body
        expected = "v0=" + hmac.digest(self._secret, base, "sha256").hex()
        if not hmac.compare_digest(expected, signature):
            return "bad signature"
        self._forget(clock)
        if signature in self._seen:
            return "replayed request"
        self._seen[signature] = int(timestamp) + MAX_AGE
        return None

    def _forget(self, clock: float) -> None:
        seen = self._seen
        while seen:
            _, expires = next(iter(seen.items()))
            if expires >= clock and len(seen) < self._max:
                break
            seen.popitem(last=False)
