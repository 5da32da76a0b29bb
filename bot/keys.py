"""The application keys the server's components share (aiohttp AppKeys), in a module of their own so
components read them without importing the server that mounts them."""

from __future__ import annotations

from collections import Counter

from aiohttp import web

from sync.runtime.core import Core
from sync.runtime.settings import Settings

__all__ = ["CORE", "METRICS", "SETTINGS", "STATUS", "WARNINGS"]

CORE = web.AppKey("core", Core)
SETTINGS = web.AppKey("settings", Settings)
METRICS = web.AppKey("metrics", Counter)
WARNINGS = web.AppKey("warnings", list)
STATUS = web.AppKey("components", dict)
