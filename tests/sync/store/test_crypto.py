"""Encrypted columns: unreadable in the raw table, round-trip through the model, and a wrong key
is a clear error rather than garbage."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from sync.runtime.core import Core
from sync.store.crypto import KeyError_, SecretBox, install_key, load_or_create_key, new_key
from sync.store.model import Connection
from tests.conftest import TEST_KEY


async def test_credentials_are_encrypted_at_rest(core: Core) -> None:
    async with core.store.session() as s:
        conn = Connection(practice_id=1, provider="caldav", account="ann@example.org",
                          credentials={"password": "hunter2-app-pass"})
        s.add(conn)
    async with core.store.session() as s:
        raw = (await s.execute(text("SELECT credentials FROM connection"))).scalar_one()
        assert "hunter2" not in raw and raw.startswith("v1:")
        loaded = await s.get(Connection, conn.id)
        assert loaded is not None and loaded.credentials == {"password": "hunter2-app-pass"}


async def test_wrong_key_is_a_clear_error(core: Core) -> None:
    async with core.store.session() as s:
        s.add(Connection(practice_id=1, provider="ics", account="feed", credentials={"token": "x"}))
    install_key(new_key())
    try:
        with pytest.raises(KeyError_, match=r"encrypted with key .* CLINICBOT_SECRET_KEY"):
            async with core.store.session() as s:
                from sqlalchemy import select

                (await s.scalars(select(Connection))).all()
    finally:
        install_key(TEST_KEY)


def test_tampered_ciphertext_fails_integrity() -> None:
    box = SecretBox(new_key())
    token = box.encrypt(b"secret")
    head, body = token.rsplit(":", 1)
    flipped = body[:-4] + ("AAAA" if body[-4:] != "AAAA" else "BBBB")
    with pytest.raises(KeyError_):
        box.decrypt(f"{head}:{flipped}")


def test_generated_key_file_is_private(tmp_path: Path) -> None:
    key, where = load_or_create_key(None, tmp_path / "k")
    assert (tmp_path / "k").stat().st_mode & 0o777 == 0o600
    assert "generated" in where
    again, _ = load_or_create_key(None, tmp_path / "k")
    assert again == key


def test_malformed_key_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "k").write_text("garbage")
    with pytest.raises(KeyError_, match="malformed"):
        load_or_create_key(None, tmp_path / "k")
