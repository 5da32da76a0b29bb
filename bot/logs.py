"""Structured logging with request ids; JSON on request. Messages and extras must never carry
patient data or secrets, and a filter masks anything that looks like a bearer token anyway.

A logged exception shows its type and the innermost place in clinicbot's own code it passed
(`where=bot/teams/bot.py:123 in _installed`), never its message: a database error's message
quotes the row it could not write. With CLINICBOT_LOG_LEVEL=DEBUG the same record also carries
the traceback, its frames and exception types only.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
import traceback
from datetime import UTC, datetime
from pathlib import Path

__all__ = ["configure_logging", "request_id", "safe_traceback"]

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")

_RESERVED = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
_TOKENISH = re.compile(r"(xox[abposr]-[\w-]+|eyJ[\w-]{10,}\.[\w-]+\.[\w-]+|Bearer\s+\S+)")


def _mask(text: str) -> str:
    return _TOKENISH.sub("[redacted]", text)


class _ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        return True


def _extras(record: logging.LogRecord) -> dict[str, object]:
    return {k: v for k, v in vars(record).items() if k not in _RESERVED and k != "request_id"}


#: The folder holding clinicbot's packages (a checkout, or site-packages once installed).
_ROOT = Path(__file__).resolve().parent.parent
_OURS = {"bot", "sync", "adapters"}
DEBUG_HINT = "CLINICBOT_LOG_LEVEL=DEBUG logs the traceback"


def _own_path(filename: str) -> str | None:
    try:
        relative = Path(filename).resolve().relative_to(_ROOT)
    except ValueError:
        return None
    return relative.as_posix() if relative.parts and relative.parts[0] in _OURS else None


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception and what caused it, outermost cause first (as Python prints them)."""
    found: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and all(current is not f for f in found):
        found.append(current)
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)
    return found[::-1]


def _where(exc: BaseException) -> str | None:
    """The innermost frame in clinicbot's own code that the exception passed through."""
    place = None
    for link in _chain(exc):
        for frame in traceback.extract_tb(link.__traceback__):
            path = _own_path(frame.filename)
            if path is not None:
                place = f"{path}:{frame.lineno} in {frame.name}"
    return place


def safe_traceback(exc: BaseException) -> str:
    """The traceback as Python prints it, each exception's message left out (it may carry patient data)."""
    parts: list[str] = []
    for i, link in enumerate(_chain(exc)):
        if i:
            parts.append("\nwhich led to:\n\n")
        parts.append("Traceback (most recent call last):\n")
        parts.extend(traceback.format_list(traceback.extract_tb(link.__traceback__)))
        parts.append(f"{type(link).__module__}.{type(link).__qualname__} (message withheld)\n")
    return "".join(parts).rstrip("\n")


def _exception_fields(record: logging.LogRecord) -> tuple[dict[str, object], str | None]:
    """(error, where, hint) fields for a record with an exception, and its traceback at DEBUG."""
    if not record.exc_info or record.exc_info[1] is None:
        return {}, None
    exc = record.exc_info[1]
    fields: dict[str, object] = {"error": type(exc).__name__}
    where = _where(exc)
    if where:
        fields["where"] = where
    if logging.getLogger().isEnabledFor(logging.DEBUG):  # CLINICBOT_LOG_LEVEL sets the root level
        return fields, safe_traceback(exc)
    fields["hint"] = DEBUG_HINT
    return fields, None


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": _mask(record.getMessage()),
            "request_id": getattr(record, "request_id", "-"),
        }
        fields, trace = _exception_fields(record)
        for k, v in {**fields, **_extras(record)}.items():
            doc[k] = v if isinstance(v, (int, float, bool)) or v is None else _mask(str(v))
        if trace:
            doc["traceback"] = _mask(trace)
        return json.dumps(doc, separators=(",", ":"))


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields, trace = _exception_fields(record)
        extras = " ".join(f"{k}={_mask(str(v))}" for k, v in {**fields, **_extras(record)}.items())
        rid = getattr(record, "request_id", "-")
        when = self.formatTime(record, "%H:%M:%S")
        base = f"{when} {record.levelname:<7} {record.name} [{rid}] {_mask(record.getMessage())}"
        line = f"{base} {extras}".rstrip()
        return f"{line}\n{_mask(trace)}" if trace else line


def configure_logging(fmt: str = "text", level: str = "INFO") -> None:
    """Install one stderr handler on the root logger (idempotent)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_clinicbot", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler._clinicbot = True  # type: ignore[attr-defined]
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(_ContextFilter())
    root.addHandler(handler)
    root.setLevel(level)
    for noisy in (
        "aiohttp.access", "httpx", "httpcore", "apscheduler.executors.default", "msrest", "urllib3", "alembic",
    ):  # fmt: skip
        logging.getLogger(noisy).setLevel(logging.WARNING)
