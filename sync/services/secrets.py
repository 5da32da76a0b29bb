"""Sealing a front end's own secrets (a chat platform's tokens) with the practice database's key, for
stores the core does not own (slack_sdk's installation store). AES-GCM bound to a context, so a
value sealed for one use does not open for another."""

from __future__ import annotations

from sync.store.crypto import current_box

__all__ = ["is_sealed", "seal", "unseal"]

_PREFIX = "v1:"


def is_sealed(value: str | None) -> bool:
    return bool(value) and str(value).startswith(_PREFIX)


def seal(value: str | None, context: bytes) -> str | None:
    """`value` encrypted for `context`; empty and already sealed values are returned as they are."""
    if not value or is_sealed(value):
        return value
    return current_box().encrypt(value.encode(), context)


def unseal(value: str | None, context: bytes) -> str | None:
    """The plain text of a sealed value (KeyError_ when the key or context is wrong); others as they are."""
    if not value or not is_sealed(value):
        return value
    return current_box().decrypt(value, context).decode()
