"""Request/response plumbing shared by the fake Graph's modules: error bodies and Prefer parsing."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

__all__ = ["DEFAULT_PAGE", "Req", "Resp", "applied", "error", "prefer"]

DEFAULT_PAGE = 10
_PREFER = re.compile(r'([\w.\-]+)\s*=\s*("[^"]*"|[^,\s]+)')


@dataclass
class Req:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    principal: Any

    def header(self, name: str) -> str | None:
        for key, value in self.headers.items():
            if key.lower() == name.lower():
                return value
        return None


@dataclass
class Resp:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


def error(status: int, code: str, message: str) -> Resp:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    inner = {"date": now, "request-id": str(uuid.uuid4()), "client-request-id": str(uuid.uuid4())}
    return Resp(status, {"error": {"code": code, "message": message, "innerError": inner}})


def prefer(header: str | None) -> dict[str, str]:
    return {k: v.strip('"') for k, v in _PREFER.findall(header or "")}


def applied(prefs: dict[str, str]) -> str:
    return ", ".join(f'{k}="{v}"' if not v.isdigit() else f"{k}={v}" for k, v in prefs.items())
