"""Helper process for the lock tests: take a connection's sync lock, say so, hold it until stdin closes."""

from __future__ import annotations

import asyncio
import sys

from sync.boot import open_core
from sync.runtime.locks import SyncBusy, connection_lock
from sync.runtime.settings import Settings


async def main(url: str, schema: str, key: str, connection_id: int) -> None:
    core = open_core(Settings(_env_file=None, database_url=url, database_schema=schema,  # type: ignore[call-arg]
                              secret_key=key))
    try:
        async with connection_lock(core, connection_id):
            print("locked", flush=True)
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    except SyncBusy:
        print("busy", flush=True)
    finally:
        await core.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))
