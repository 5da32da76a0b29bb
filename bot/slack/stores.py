"""slack_sdk's SQLAlchemy installation and OAuth-state stores on clinicbot's own database.

slack_sdk >= 3.27 ships async stores that take an `AsyncEngine`, so they share the core's engine
(aiosqlite or asyncpg, with the PostgreSQL schema pinned by its search_path); no second, sync engine
is needed. The tables come from our migrations (sync/migrations, "0002_slack_oauth"), and the SQL is the
SDK's. Tokens are sealed at rest with CLINICBOT_SECRET_KEY (sync.services.secrets) before the store
writes them.
"""

from __future__ import annotations

import copy
from typing import Any

from slack_sdk.oauth.installation_store.models.bot import Bot
from slack_sdk.oauth.installation_store.models.installation import Installation
from slack_sdk.oauth.installation_store.sqlalchemy import AsyncSQLAlchemyInstallationStore
from slack_sdk.oauth.state_store.sqlalchemy import AsyncSQLAlchemyOAuthStateStore

from sync.runtime.core import Core
from sync.services.secrets import seal, unseal

__all__ = ["EncryptedInstallationStore", "make_state_store"]

_TOKEN_FIELDS = ("bot_token", "bot_refresh_token", "user_token", "user_refresh_token")
_CONTEXT = b"slack-token"


def _seal(value: str | None) -> str | None:
    return seal(value, _CONTEXT)


def _open(value: str | None) -> str | None:
    return unseal(value, _CONTEXT)


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


def make_state_store(core: Core, expiration_seconds: int = 600) -> AsyncSQLAlchemyOAuthStateStore:
    """Single-use OAuth states, valid for ten minutes, in the core's database."""
    return AsyncSQLAlchemyOAuthStateStore(expiration_seconds=expiration_seconds, engine=core.store.engine)
