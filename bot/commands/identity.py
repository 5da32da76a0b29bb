"""Who is talking, for the command layer: the Actor and its resolution live in sync.services.identities."""

from __future__ import annotations

from sync.services.identities import Actor, Platform, actor_for_identity, remember_conversation, resolve_actor

__all__ = ["Actor", "Platform", "actor_for_identity", "remember_conversation", "resolve_actor"]
