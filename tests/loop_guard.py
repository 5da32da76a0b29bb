"""What a test's event loop leaves behind when it closes fails that test, named.

pytest-asyncio closes each test's loop through `asyncio.Runner`, whose `_cancel_all_tasks`
cancels the tasks still pending and waits for them without limit: a task that ignores its
cancellation hung whole runs there after their test had passed. Here that wait is bounded
(`CLINICBOT_TEST_LEFTOVER_SECONDS`, 10 s), and the test fails when:
- a task is still running after it was cancelled (it swallows CancelledError, or awaits something
  that never comes in a `finally`);
- a database connection opened on the loop is still open: an engine nobody disposed, or a
  connection nobody returned. Its aiosqlite worker thread outlives the loop and, when the
  connection is collected, dies with "Event loop is closed" (printed after pytest's summary).

Loaded by tests/conftest.py (`install()` and the teardown hook), or as a plugin: `-p tests.loop_guard`.
"""

from __future__ import annotations

import asyncio
import asyncio.runners
import os
import sys
import weakref
from collections.abc import Generator
from pathlib import Path
from types import FrameType
from typing import Any

import greenlet
import pytest
from sqlalchemy import event
from sqlalchemy.pool import Pool

__all__ = ["install", "leftovers", "pytest_configure", "pytest_runtest_teardown"]

#: How long a closing loop waits for its cancelled tasks to end.
LEFTOVER_TASK_SECONDS = float(os.environ.get("CLINICBOT_TEST_LEFTOVER_SECONDS", "10"))

_ROOT = str(Path(__file__).resolve().parents[1]) + os.sep
#: What closing loops found, reported (and cleared) by the teardown of the test running then.
_problems: list[str] = []
#: Database connections opened on each loop: (the driver's connection, where it was opened).
_opened: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, list[tuple[weakref.ref[Any], str]]] = (
    weakref.WeakKeyDictionary()
)


def _where() -> str:
    """The innermost frame of this project's code (not the virtualenv's) that led here.

    SQLAlchemy's async engines run the pool in a greenlet, whose stack stops at the greenlet:
    the awaiting code's frames are on the parent greenlet's stack, where it switched."""
    frames: list[FrameType] = []
    frame: FrameType | None = sys._getframe(1)
    current: Any = greenlet.getcurrent()
    while frame is not None or current is not None:
        while frame is not None:
            frames.append(frame)
            frame = frame.f_back
        current = current.parent if current is not None else None
        frame = current.gr_frame if current is not None else None
    for found in frames:
        name = found.f_code.co_filename
        if name.startswith(_ROOT) and f"{os.sep}.venv{os.sep}" not in name and name != __file__:
            return f"{name[len(_ROOT):]}:{found.f_lineno} in {found.f_code.co_name}"
    return "an unknown place"


def _on_connect(dbapi_connection: Any, _record: Any) -> None:
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return  # a synchronous engine (APScheduler's job store): no loop to outlive
    driver = getattr(dbapi_connection, "_connection", None)
    if driver is not None:
        _opened.setdefault(loop, []).append((weakref.ref(driver), _where()))


def _still_open(driver: Any) -> bool:
    if hasattr(driver, "is_closed"):  # asyncpg
        return not driver.is_closed()
    return bool(getattr(driver, "_running", False))  # aiosqlite: False once closed or stopped


def leftovers(loop: asyncio.AbstractEventLoop, timeout: float = LEFTOVER_TASK_SECONDS) -> list[str]:
    """Cancel every task of `loop` (which is not running) and wait up to `timeout` seconds for them;
    what is wrong: the tasks still running, and the database connections opened on it still open."""
    problems: list[str] = []
    deadline = loop.time() + timeout
    waited: set[asyncio.Task[Any]] = set()
    # Rounds: a cancelled task may start others as it ends (SQLAlchemy closes an invalidated
    # connection in a task of its own); those are cancelled and waited for too.
    while (tasks := asyncio.all_tasks(loop) - waited) and loop.time() < deadline:
        for task in tasks:
            task.cancel()
        done, _ = loop.run_until_complete(asyncio.wait(tasks, timeout=max(deadline - loop.time(), 0.0)))
        waited |= tasks
        for task in done:
            if not task.cancelled() and task.exception() is not None:
                loop.call_exception_handler({"message": "unhandled exception during loop close",
                                             "exception": task.exception(), "task": task})
    for task in asyncio.all_tasks(loop):
        problems.append(f"a task ignored its cancellation when the test's loop closed "
                        f"(still running {timeout:g} s after it was cancelled): {task!r}")
    for ref, where in _opened.pop(loop, []):
        driver = ref()
        if driver is not None and _still_open(driver):
            problems.append(f"a database connection opened at {where} was still open when the test's loop "
                            "closed: dispose of the engine (Core.close, Store.dispose) or close the connection")
    return problems


def _cancel_all_tasks(loop: asyncio.AbstractEventLoop) -> None:
    """asyncio.runners' cancel-all at loop close, bounded, with what it finds kept for the test's teardown."""
    _problems.extend(leftovers(loop))


def install() -> None:
    """Check every loop asyncio.Runner closes (pytest-asyncio's), and note each database connection's loop."""
    asyncio.runners._cancel_all_tasks = _cancel_all_tasks  # type: ignore[attr-defined]
    if not event.contains(Pool, "connect", _on_connect):
        event.listen(Pool, "connect", _on_connect)


def pytest_configure(config: pytest.Config) -> None:
    install()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None, None, None]:
    """Fail the test whose teardown closed a loop that left something behind."""
    try:
        return (yield)
    finally:
        found, _problems[:] = list(_problems), []
        if found:
            pytest.fail("\n".join(found), pytrace=False)
