"""The scheduled export of signed audit checkpoints: the chain's head kept outside the database.

A checkpoint written only into the table it protects proves nothing to someone who can rewrite the
table, so the job also logs it and appends it to CLINICBOT_AUDIT_CHECKPOINT_FILE when set;
`clinicbot audit verify --checkpoints FILE` checks the chain against those lines.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from sync.runtime.core import Core
from sync.store.audit import checkpoint

__all__ = ["checkpoint_job"]

log = logging.getLogger("clinicbot.audit")


async def checkpoint_job(core: Core) -> None:
    """Scheduled export of a signed checkpoint: a log line, and a line appended to the checkpoint file if set."""
    async with core.store.session() as session:
        mark = await checkpoint(session)
    log.info("audit checkpoint", extra={"seq": mark.seq, "hash": mark.hash, "at": mark.at, "mac": mark.mac})
    path = core.settings.audit_checkpoint_file
    if path is not None:
        await asyncio.to_thread(_append_line, path, mark.line())


def _append_line(path: Path, line: str) -> None:
    with path.expanduser().open("a", encoding="utf-8") as out:
        out.write(line + "\n")
