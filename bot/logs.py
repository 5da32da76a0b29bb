"""Structured logging with request ids; JSON on request. Messages and extras must never carry
patient data or secrets, and a filter masks anything that looks like a bearer token anyway."""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
from datetime import UTC, datetime

__all__ = ["configure_logging", "request_id"]

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


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": _mask(record.getMessage()),
            "request_id": getattr(record, "request_id", "-"),
        }
        for k, v in _extras(record).items():
            doc[k] = v if isinstance(v, (int, float, bool)) or v is None else _mask(str(v))
        if record.exc_info and record.exc_info[0] is not None:
            doc["error"] = record.exc_info[0].__name__
        return json.dumps(doc, separators=(",", ":"))


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        extras = " ".join(f"{k}={_mask(str(v))}" for k, v in _extras(record).items())
        rid = getattr(record, "request_id", "-")
        when = self.formatTime(record, "%H:%M:%S")
        base = f"{when} {record.levelname:<7} {record.name} [{rid}] {_mask(record.getMessage())}"
        if record.exc_info and record.exc_info[0] is not None:
            base += f" error={record.exc_info[0].__name__}"
        return f"{base} {extras}".rstrip()


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
