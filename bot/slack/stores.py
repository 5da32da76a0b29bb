"""slack_sdk's SQLAlchemy installation and OAuth-state stores on clinicbot's own database.

slack_sdk >= 3.27 ships async stores that take an `AsyncEngine`, so they share the core's engine
(aiosqlite or asyncpg, with the PostgreSQL schema pinned by its search_path); no second, sync engine
is needed. The tables come from our migrations (sync/migrations, "0002_slack_oauth").
Tokens are encrypted at rest with CLINICBOT_SECRET_KEY before the store writes them.
"""

from __future__ import annotations

import copy
from typing import Any

from slack_sdk.oauth.installation_store.models.bot import Bot
from slack_sdk.oauth.installation_store.models.installation import Installation
from slack_sdk.oauth.installation_store.sqlalchemy import AsyncSQLAlchemyInstallationStore
from slack_sdk.oauth.state_store.sqlalchemy import AsyncSQLAlchemyOAuthStateStore
from sqlalchemy.ext.asyncio import AsyncEngine

from sync.store.crypto import current_box

__all__ = ["EncryptedInstallationStore", "make_state_store"]

_TOKEN_FIELDS = ("bot_token", "bot_refresh_token", "user_token", "user_refresh_token")
_CONTEXT = b"slack-token"


def _seal(value: str | None) -> str | None:
    if not value or value.startswith("v1:"):
        return value
    return current_box().encrypt(value.encode(), _CONTEXT)


def _open(value: str | None) -> str | None:
    if not value or not value.startswith("v1:"):
        return value
    return current_box().decrypt(value, _CONTEXT).decode()


def _apply(obj: Any, fn: Any) -> Any:
    for name in _TOKEN_FIELDS:
        if hasattr(obj, name):
            setattr(obj, name, fn(getattr(obj, name)))
    return obj


class EncryptedInstallationStore(AsyncSQLAlchemyInstallationStore):
    """The SDK's store, with tokens sealed on the way in and opened on the way out."""

    async def async_save(self, installation: Installation) -> None:
        await super().async_save(_apply(copy.copy(installation), _seal))

    async def async_save_bot(self, bot: Bot) -> None:
        await super().async_save_bot(_apply(copy.copy(bot), _seal))

    async def async_find_bot(self, **kwargs: Any) -> Bot | None:
        found = await super().async_find_bot(**kwargs)
        return _apply(found, _open) if found is not None else None

    async def async_find_installation(self, **kwargs: Any) -> Installation | None:
        found = await super().async_find_installation(**kwargs)
        return _apply(found, _open) if found is not None else None


def make_state_store(engine: AsyncEngine, expiration_seconds: int = 600) -> AsyncSQLAlchemyOAuthStateStore:
    """Single-use OAuth states, valid for ten minutes."""
    return AsyncSQLAlchemyOAuthStateStore(expiration_seconds=expiration_seconds, engine=engine)
