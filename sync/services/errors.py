"""The services' error tree: what a front end may show a person, typed by what went wrong.

Every message is user-safe (no patient data, no stack, no SQL) and says what to do next. Front ends
pick how to show an error from its class, never from its wording, so a message can be reworded
without changing whether it reads as "not found", "bad input", "not allowed" or "conflict".
"""

from __future__ import annotations

import traceback
from pathlib import Path
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from sync.store.database import StoreError

__all__ = ["DATABASE_ERRORS", "Conflict", "Denied", "Invalid", "NotFound", "ServiceError", "database_error_facts"]

#: What a service call raises when the database cannot be reached or fails: a front end answers
#: "try again" (nothing was changed: every service call is one transaction) without naming SQL.
DATABASE_ERRORS: tuple[type[Exception], ...] = (StoreError, SQLAlchemyError, OSError)


_ROOT = Path(__file__).resolve().parents[2]
_OURS = tuple(str(_ROOT / part) for part in ("sync", "adapters", "bot"))


def database_error_facts(exc: BaseException) -> dict[str, Any]:
    """What a log line may say of a database error: its kind, the driver's first line (SQLite's
    "database is locked", PostgreSQL's 'duplicate key value violates unique constraint "x"': never
    SQL or parameters, which can hold patient data) and the innermost line of clinicbot's code."""
    orig = getattr(exc, "orig", None) or exc
    lines = str(orig).strip().splitlines()
    where = ""
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename.startswith(_OURS):
            where = f"{Path(frame.filename).relative_to(_ROOT)}:{frame.lineno}"
    return {"error": type(exc).__name__, "driver_error": type(orig).__name__,
            "reason": lines[0][:160] if lines else "", "where": where}


class ServiceError(Exception):
    """A problem the person can act on; `str(error)` is the message to show them."""


class NotFound(ServiceError):
    """What the person named does not exist (or is not theirs to see)."""


class Invalid(ServiceError):
    """The input is malformed or out of range; nothing was looked up or changed."""


class Denied(ServiceError):
    """The person may not do this; the message says who may."""


class Conflict(ServiceError):
    """The request is well formed but the current state refuses it (already cancelled, slot taken ...)."""
