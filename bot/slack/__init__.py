"""The Slack front end: slack-bolt glue (bot.slack.server, bot.slack.listeners) and the
View -> Block Kit renderer (bot.slack.render). Mounted by bot.app as the "slack" component."""

from __future__ import annotations

from bot.slack.server import setup_slack

__all__ = ["setup_slack"]
