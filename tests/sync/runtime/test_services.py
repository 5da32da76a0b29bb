"""Core.services is a typed container: every collaborator has a named, typed slot."""

from __future__ import annotations

import pytest

from sync.runtime.core import Core
from sync.runtime.notifier import RecordingNotifier


async def test_a_misspelt_collaborator_is_an_error_not_a_silent_miss(core: Core) -> None:
    assert core.services.notifier is None and core.services.sync_queue is None
    assert core.services.actor_caches == [] and core.services.sync_locks == {}
    with pytest.raises(AttributeError):
        core.services.notifer = RecordingNotifier()  # type: ignore[attr-defined]
    core.services.notifier = notifier = RecordingNotifier()
    assert core.services.notifier is notifier
