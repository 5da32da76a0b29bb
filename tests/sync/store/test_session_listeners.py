"""After-commit callbacks ride on each Store's own session class, never on SQLAlchemy's global Session."""

from __future__ import annotations

import importlib
import pkgutil

from sqlalchemy.orm import Session

import sync
from sync.runtime.core import Core
from sync.store.database import after_commit


def test_importing_sync_installs_no_global_session_listener() -> None:
    """An embedder's own SQLAlchemy sessions must not run clinicbot's hooks."""
    for module in pkgutil.walk_packages(sync.__path__, "sync."):
        if ".migrations" not in module.name:
            importlib.import_module(module.name)
    plain = Session()
    assert list(plain.dispatch.after_commit) == []
    assert list(plain.dispatch.after_soft_rollback) == []


async def test_a_plain_session_ignores_callbacks_and_a_store_session_runs_them(core: Core) -> None:
    woken: list[str] = []
    with Session() as plain, plain.begin():
        after_commit(plain, lambda: woken.append("plain"))
    async with core.store.session() as s:
        after_commit(s, lambda: woken.append("store"))
    assert woken == ["store"]
