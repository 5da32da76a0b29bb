"""clinicbot's own signature for bodies POSTed to it by a clinic's website or script (lead forms, shift pushes).

`X-Clinicbot-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + raw body)>`, checked on the
raw body before anything decodes it, in constant time, with `t` (ASCII digits only) within `tolerance`
seconds of the server's clock either way.
"""

from __future__ import annotations

import hashlib
import hmac

__all__ = ["SIGNATURE_HEADER", "TOLERANCE", "check", "sign"]

SIGNATURE_HEADER = "x-clinicbot-signature"
#: Seconds a signature's timestamp may be off the server's clock (either way).
TOLERANCE = 300


def _mac(body: bytes, secret: str, t: str) -> str:
    return hmac.new(secret.encode("utf-8"), t.encode("ascii") + b"." + body, hashlib.sha256).hexdigest()


def sign(body: bytes, secret: str, t: int) -> str:
    """The header value for `body` signed at unix time `t`."""
    return f"t={t},v1={_mac(body, secret, str(t))}"


def check(body: bytes, header: str, secret: str, now: float, tolerance: int = TOLERANCE) -> str | None:
    """None when `header` signs `body` under `secret` within `tolerance` of `now`; else why not (for the log)."""
    if not secret:
        return "no secret"
    parts = dict(p.strip().partition("=")[::2] for p in header.split(","))
    t, v1 = parts.get("t", ""), parts.get("v1", "")
    # ASCII digits of a timestamp's length only: isdigit() alone accepts "¹²³".
    if not (t.isascii() and t.isdigit()) or len(t) > 12 or not v1:
        return "unsigned"
    if abs(now - int(t)) > tolerance:
        return "stale"
    return None if hmac.compare_digest(_mac(body, secret, t).encode(), v1.encode("ascii", "replace")) else "forged"
