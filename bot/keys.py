"""The application keys the server's components share (aiohttp AppKeys), in a module of their own so
components read them without importing the server that mounts them."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from aiohttp import web

from sync.runtime.core import Core
from sync.runtime.settings import Settings

if TYPE_CHECKING:
    from bot.slack.server import SlackRuntime

__all__ = ["CORE", "METRICS", "SETTINGS", "SLACK", "STATUS", "WARNINGS"]

CORE = web.AppKey("core", Core)
SETTINGS = web.AppKey("settings", Settings)
METRICS = web.AppKey("metrics", Counter)
WARNINGS = web.AppKey("warnings", list)
STATUS = web.AppKey("components", dict)
#: The Slack runtime, present when Slack is mounted (typed by name: a server without Slack never imports it).
SLACK: web.AppKey[SlackRuntime] = web.AppKey("slack")
