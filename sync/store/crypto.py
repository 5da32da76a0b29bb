"""Encryption at rest for credentials and patient fields (AES-256-GCM with CLINICBOT_SECRET_KEY).

Stored form: ``v1:<key id>:<base64(nonce || ciphertext+tag)>``. The key id is the first 8 hex
digits of SHA-256 of the key, so a wrong key is named as such instead of decrypting to garbage.

The key is process-wide (`install_key`): SQLAlchemy column types have no per-engine context, and
one process serves one practice database.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import Text
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

__all__ = [
    "EncryptedBytes",
    "EncryptedJSON",
    "EncryptedText",
    "KeyError_",
    "SecretBox",
    "current_box",
    "install_key",
    "load_or_create_key",
    "new_key",
]

log = logging.getLogger("clinicbot.crypto")


class KeyError_(Exception):
    """The secret key is missing, malformed, or not the one the data was encrypted with."""


def new_key() -> str:
    """A fresh key in the CLINICBOT_SECRET_KEY format (32 bytes, URL-safe base64)."""
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()


def _decode_key(text: str) -> bytes:
    text = text.strip()
    raw = base64.urlsafe_b64decode(text.encode() + b"=" * (-len(text) % 4))
    if len(raw) != 32:
        raise KeyError_("CLINICBOT_SECRET_KEY must be 32 bytes in URL-safe base64")
    return raw


class SecretBox:
    """AES-GCM with a key id, so that decrypting with the wrong key is a clear error."""

    def __init__(self, key_text: str) -> None:
        raw = _decode_key(key_text)
        self._aead = AESGCM(raw)
        self._raw = raw
        self.key_id = hashlib.sha256(raw).hexdigest()[:8]

    def derive(self, purpose: str) -> bytes:
        """A 32-byte subkey for one purpose (the audit chain's MAC ...), so no two uses share a key."""
        return hmac.new(self._raw, b"clinicbot/" + purpose.encode(), hashlib.sha256).digest()

    def encrypt(self, plaintext: bytes, context: bytes = b"") -> str:
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, plaintext, context or None)
        return f"v1:{self.key_id}:{base64.b64encode(nonce + sealed).decode()}"

    def encrypt_many(self, plaintexts: Sequence[bytes | None]) -> list[str | None]:
        """`encrypt` (no context) of each plaintext, None kept as None: the nonces come from one
        `os.urandom` call, not one each (a 10,000-event import seals 30,000 values)."""
        count = sum(1 for p in plaintexts if p is not None)
        nonces = os.urandom(12 * count)
        seal, b64, prefix = self._aead.encrypt, base64.b64encode, f"v1:{self.key_id}:"
        out: list[str | None] = []
        at = 0
        for plaintext in plaintexts:
            if plaintext is None:
                out.append(None)
                continue
            nonce = nonces[at:at + 12]
            at += 12
            out.append(prefix + b64(nonce + seal(nonce, plaintext, None)).decode())
        return out

    def decrypt(self, token: str, context: bytes = b"") -> bytes:
        try:
            version, key_id, body = token.split(":", 2)
        except ValueError:
            raise KeyError_("encrypted value is malformed (not written by clinicbot?)") from None
        if version != "v1":
            raise KeyError_(f"encrypted value has unknown format {version!r}")
        if key_id != self.key_id:
            raise KeyError_(
                f"data was encrypted with key {key_id}, but CLINICBOT_SECRET_KEY is key {self.key_id}: "
                "set the key this database was created with"
            )
        blob = base64.b64decode(body)
        try:
            return self._aead.decrypt(blob[:12], blob[12:], context or None)
        except InvalidTag:
            raise KeyError_("encrypted value failed its integrity check (edited in the database?)") from None


_box: SecretBox | None = None


def install_key(key_text: str) -> SecretBox:
    """Make `key_text` the process's key for encrypted columns."""
    global _box
    _box = SecretBox(key_text)
    return _box


def current_box() -> SecretBox:
    if _box is None:
        raise KeyError_("no secret key installed: set CLINICBOT_SECRET_KEY or run `clinicbot db upgrade` once")
    return _box


def load_or_create_key(explicit: str | None, key_file: Path, *, generate: bool = True) -> tuple[str, str]:
    """Return (key, where-from). Uses CLINICBOT_SECRET_KEY, else the key file, else makes one.

    A generated key file is written with mode 0600, and the caller logs where it is. With
    `generate` off (a shared PostgreSQL database) a missing key is an error instead: every
    replica would generate a key of its own, and each could not read what the others wrote.
    """
    if explicit:
        return explicit, "CLINICBOT_SECRET_KEY"
    path = key_file.expanduser()
    if path.exists():
        text = path.read_text().strip()
        try:
            _decode_key(text)
        except (ValueError, KeyError_):
            raise KeyError_(f"key file {path} is malformed; restore it or set CLINICBOT_SECRET_KEY") from None
        return text, str(path)
    if not generate:
        raise KeyError_(
            "CLINICBOT_SECRET_KEY is not set: on PostgreSQL every replica must share one key (a key file "
            "generated per replica would make the others' data unreadable); generate one as the README says "
            "and pass the same value to every process"
        )
    key = new_key()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key + "\n")
    log.warning("generated a new secret key in %s (mode 0600); back it up: without it the stored "
                "credentials and patient fields cannot be read", path.resolve())
    return key, f"{path} (generated)"


class EncryptedText(TypeDecorator[str]):
    """A text column stored encrypted. NULL stays NULL."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return current_box().encrypt(value.encode())

    def process_result_value(self, value: str | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return current_box().decrypt(value).decode()


class EncryptedJSON(TypeDecorator[Any]):
    """A JSON document stored encrypted (credentials, token caches)."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return current_box().encrypt(json.dumps(value, separators=(",", ":")).encode())

    def process_result_value(self, value: str | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        return json.loads(current_box().decrypt(value))


class EncryptedBytes(TypeDecorator[bytes]):
    """Bytes stored encrypted (a cached attachment): never plaintext in the database file."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: bytes | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return current_box().encrypt(bytes(value))

    def process_result_value(self, value: str | None, dialect: Dialect) -> bytes | None:
        if value is None:
            return None
        return current_box().decrypt(value)
