"""The Slack front end: slack-bolt glue (bot.slack.server, bot.slack.listeners) and the
View -> Block Kit renderer (bot.slack.render). Mounted by bot.app as the "slack" component.

This module decides from the settings alone whether Slack is on: a server without Slack never imports
slack-bolt and slack_sdk (about 280 modules), which bot.slack.server and the renderers load.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from bot.keys import SLACK

if TYPE_CHECKING:
    from sync.runtime.settings import Settings

__all__ = ["SLACK", "setup_slack", "slack_mode"]

def slack_mode(settings: Settings) -> tuple[str | None, str | None]:
    """(mode, None) or (None, reason it is off)."""
    s = settings
    if s.slack_app_token:
        if not s.slack_bot_token:
            return None, "SLACK_APP_TOKEN (Socket Mode) also needs SLACK_BOT_TOKEN"
        return "socket", None
    if not s.slack_signing_secret:
        if s.slack_bot_token or s.slack_client_id:
            return None, "SLACK_SIGNING_SECRET is not set"
        return None, (
            "not configured: set SLACK_SIGNING_SECRET with SLACK_BOT_TOKEN (one workspace) "
            "or SLACK_CLIENT_ID and SLACK_CLIENT_SECRET (install)"
        )
    if s.slack_bot_token:
        return "single", None
    if s.slack_client_id and s.slack_client_secret:
        return "oauth", None
    return None, "SLACK_SIGNING_SECRET needs SLACK_BOT_TOKEN or SLACK_CLIENT_ID and SLACK_CLIENT_SECRET"


def setup_slack(app: web.Application, settings: Settings) -> str | None:
    """Mount the Slack front end; None when enabled, else why it is off."""
    mode, reason = slack_mode(settings)
    if mode is None:
        return reason
    from bot.slack.server import mount_slack  # lazy: slack-bolt and slack_sdk, for a server with Slack only

    mount_slack(app, settings, mode)
    return None
