"""Per-connection sync locks: one run at a time per connection, across processes too."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from sync.engine.run import sync_connection
from sync.runtime.core import Core
from sync.runtime.locks import SyncBusy, connection_lock
from tests.conftest import TEST_KEY
from tests.sync.helpers import make_clinic

ROOT = Path(__file__).resolve().parents[3]


def _holder(core: Core, connection_id: int) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.sync.lock_holder", core.store.url, core.store.schema, TEST_KEY,
         str(connection_id)],
        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "locked"
    return proc


async def test_lock_held_by_another_process_blocks_sync(core: Core) -> None:
    clinic = await make_clinic(core)
    conn_id = clinic.connections["source"]
    proc = await asyncio.to_thread(_holder, core, conn_id)
    try:
        with pytest.raises(SyncBusy):
            await sync_connection(core, conn_id)
        # another connection is not affected
        assert (await sync_connection(core, clinic.connections["mirror0"])).failed == 0
    finally:
        proc.communicate("")
    assert (await sync_connection(core, conn_id)).failed == 0


async def test_lock_of_a_killed_process_is_released(core: Core) -> None:
    clinic = await make_clinic(core)
    conn_id = clinic.connections["source"]
    proc = await asyncio.to_thread(_holder, core, conn_id)
    proc.kill()
    proc.wait()
    async with connection_lock(core, conn_id, wait=5):
        pass


async def test_two_runs_in_one_process_never_overlap(core: Core) -> None:
    clinic = await make_clinic(core)
    conn_id = clinic.connections["source"]
    inside = 0
    peak = 0

    async def run() -> None:
        nonlocal inside, peak
        async with connection_lock(core, conn_id, wait=5):
            inside += 1
            peak = max(peak, inside)
            await asyncio.sleep(0.05)
            inside -= 1
    await asyncio.gather(run(), run(), run())
    assert peak == 1
    async with connection_lock(core, conn_id):
        with pytest.raises(SyncBusy):
            async with connection_lock(core, conn_id):
                pass
