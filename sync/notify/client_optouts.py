"""Clients who want no messages: by a keyed hash of their address or phone number, per practice.

An email address opts out through the signed link in every email (or an admin); a phone number by
replying STOP to the practice's number (and back in with START), or an admin. Neither the address
nor the number is stored in the opt-out list: only its keyed hash.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from sync.runtime.core import Core
from sync.store import audit
from sync.store.crypto import current_box
from sync.store.model import ClientOptOut, Practice

__all__ = [
    "address_hash",
    "normal_phone",
    "opt_in_phone",
    "opt_out",
    "opt_out_by_token",
    "opted_out",
    "record_opt_out",
    "unsubscribe_token",
]

_E164 = re.compile(r"\+[1-9][0-9]{6,14}")


def normal_phone(raw: str, prefix: str = "") -> str | None:
    """A phone number in E.164 (+447700900123), or None when it cannot be.

    A number written without a country code is read in the practice's `prefix` (+44: "07700 900123"
    drops its trunk 0), and only then: without one it is not guessed.
    """
    compact = re.sub(r"[\s().\-/]", "", raw or "")
    if compact.startswith("00"):
        compact = "+" + compact[2:]
    elif prefix and compact.isdigit():
        compact = prefix + (compact[1:] if compact.startswith("0") else compact)
    return compact if _E164.fullmatch(compact) else None


def address_hash(address: str) -> str:
    """A keyed hash of an email address (case-insensitive) or an E.164 number: what opt-outs and links hold."""
    key = current_box().derive("client-address")
    return hmac.new(key, address.strip().lower().encode(), hashlib.sha256).hexdigest()


def unsubscribe_token(practice_id: int, address: str) -> str:
    """A link token naming the practice and the address's hash (no address in the URL), signed."""
    body = base64.urlsafe_b64encode(json.dumps([practice_id, address_hash(address)]).encode()).decode().rstrip("=")
    mac = hmac.new(current_box().derive("client-unsubscribe"), body.encode(), hashlib.sha256).hexdigest()[:32]
    return f"{body}.{mac}"


def _read_token(token: str) -> tuple[int, str] | None:
    if len(token) > 300 or token.count(".") != 1:
        return None
    body, mac = token.split(".")
    want = hmac.new(current_box().derive("client-unsubscribe"), body.encode(), hashlib.sha256).hexdigest()[:32]
    if not hmac.compare_digest(mac, want):
        return None
    try:
        practice_id, hashed = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    except (ValueError, TypeError):
        return None
    if not isinstance(practice_id, int) or not isinstance(hashed, str) or len(hashed) != 64:
        return None
    return practice_id, hashed


async def record_opt_out(session: AsyncSession, practice_id: int, hashed: str, source: str, actor: str) -> bool:
    """Add one opt-out in the caller's transaction (audited); False when it was there already."""
    found = await session.scalar(select(ClientOptOut).where(ClientOptOut.practice_id == practice_id,
                                                            ClientOptOut.address_hash == hashed))
    if found is not None:
        return False
    session.add(ClientOptOut(practice_id=practice_id, address_hash=hashed, source=source))
    await audit.record(session, actor=actor, action="client.opt_out", practice_id=practice_id,
                       details={"source": source})
    return True


async def opt_in_phone(session: AsyncSession, practice_id: int, hashed: str, actor: str) -> bool:
    """Lift an opt-out the client made by text (START); one an admin or a link made stays."""
    gone = await session.execute(delete(ClientOptOut).where(
        ClientOptOut.practice_id == practice_id, ClientOptOut.address_hash == hashed, ClientOptOut.source == "sms"))
    if not getattr(gone, "rowcount", 0):
        return False
    await audit.record(session, actor=actor, action="client.opt_in", practice_id=practice_id,
                       details={"source": "sms"})
    return True


async def opt_out_by_token(core: Core, token: str) -> str | None:
    """Record the opt-out a link names; the practice's name, or None for a link that is not ours."""
    read = _read_token(token)
    if read is None:
        return None
    practice_id, hashed = read
    async with core.store.session() as s:
        practice = await s.get(Practice, practice_id)
        if practice is None:
            return None
        await record_opt_out(s, practice_id, hashed, "link", "client:link")
        return practice.name


async def opt_out(core: Core, practice_id: int, address: str, *, actor: str, source: str = "cli") -> bool:
    """An admin records that a client (email address or phone number) wants no messages; False when already."""
    phone = normal_phone(address) if "@" not in address else None
    async with core.store.session() as s:
        return await record_opt_out(s, practice_id, address_hash(phone or address), source, actor)


async def opted_out(session: AsyncSession, practice_id: int, address: str) -> bool:
    """Whether the client at `address` (an email address or an E.164 number) opted out of the practice's messages."""
    found = await session.scalar(select(ClientOptOut.id).where(
        ClientOptOut.practice_id == practice_id, ClientOptOut.address_hash == address_hash(address)))
    return found is not None
