"""Platform-free view models: what a command's answer *is*, not how a platform draws it.

bot/commands returns one of these; bot/slack renders it as Block Kit and bot/teams as an Adaptive
Card. Views hold display-ready strings (times already formatted in the practice's zone) and typed
card actions (`bot.commands.actions`), never platform JSON, so both renderers show the same thing.
"""

from __future__ import annotations

from bot.views import models
from bot.views.models import *  # noqa: F403 (the view types, named once in models.__all__)

__all__ = models.__all__
