"""The platform-free command layer shared by Slack and Teams.

    text --parse--> Command ┐
    button --decode--> Action ┴--handle(core, actor, ...)--> View (bot.views) --> platform renderer

- `parse(text)`: the one grammar (bot.commands.grammar); `ParseError` carries what was wrong and
  an example, and nothing has changed.
- `actions.encode/decode`: card buttons and form submits as typed Action objects.
- `resolve_actor(core, platform, workspace_id, user_id, display)`: the person and their practice,
  created on first contact (the first person in a fresh practice becomes its admin).
- `handle(core, actor, command_or_action)`: runs it with roles enforced and returns a View.
"""

from __future__ import annotations

from bot.commands.actions import Action, decode, encode
from bot.commands.errors import ParseError
from bot.commands.grammar import GRAMMAR, Command, parse
from bot.commands.handlers import handle
from bot.commands.identity import Actor, remember_conversation, resolve_actor

__all__ = [
    "GRAMMAR",
    "Action",
    "Actor",
    "Command",
    "ParseError",
    "decode",
    "encode",
    "handle",
    "parse",
    "remember_conversation",
    "resolve_actor",
]
