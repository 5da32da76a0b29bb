"""CalDAV cursors: a sync-token, or (for servers without sync-collection) a ctag and etag listing.

    s1:<sync-token>                    RFC 6578 servers: the token as the server gave it
    e1:<base64(zlib(json))>            others: {"c": ctag, "e": {href: etag-digest}}

The etag listing keeps 8 bytes of a hash per etag, not the etag itself: 10,000 items fit in about
200 KB, and comparing digests tells "changed" as well as comparing etags does.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import zlib
from dataclasses import dataclass

from sync.contract import CursorExpired

__all__ = ["EtagState", "decode", "encode_etags", "encode_token", "etag_digest"]


@dataclass(frozen=True, slots=True)
class EtagState:
    ctag: str | None
    etags: dict[str, str]


def etag_digest(etag: str | None) -> str:
    return hashlib.blake2b((etag or "").encode(), digest_size=8).hexdigest()


def encode_token(token: str) -> str:
    return f"s1:{token}"


def encode_etags(ctag: str | None, etags: dict[str, str]) -> str:
    """etags maps remote id -> etag digest."""
    raw = json.dumps({"c": ctag, "e": etags}, separators=(",", ":"), sort_keys=True).encode()
    return "e1:" + base64.urlsafe_b64encode(zlib.compress(raw, 6)).decode()


def decode(cursor: str, provider: str) -> str | EtagState:
    """The sync-token or etag state in a cursor; CursorExpired when it is not one of ours."""
    kind, sep, payload = cursor.partition(":")
    if sep and kind == "s1" and payload and payload.isprintable():
        return payload
    if sep and kind == "e1":
        try:
            data = json.loads(zlib.decompress(base64.urlsafe_b64decode(payload.encode())))
            ctag, etags = data["c"], data["e"]
            if (ctag is None or isinstance(ctag, str)) and isinstance(etags, dict):
                return EtagState(ctag, {str(k): str(v) for k, v in etags.items()})
        except (ValueError, KeyError, TypeError, zlib.error, binascii.Error, UnicodeError):
            pass
    raise CursorExpired(f"{provider}: unreadable cursor; a full resync is needed", provider=provider)
