"""CPU per chat command in process, with its statements and transactions, on bench.chat_mix's practice.

    python -m bench.chat_cpu [--database-url postgresql://postgres@127.0.0.1:5432/test] [--n 400]

Load-independent figures beside bench.chat_mix's: each kind of command (an agenda for a practitioner
today or on a date, `appointment A-n`, a Details press, `status`) is run `--n` times through the
command handlers for staff of the three practices, after 30 warm-up runs, and reports the process's
CPU time per command (`time.process_time`, aiosqlite's thread included), the statements sent
(`before_cursor_execute`; PostgreSQL pool pings are not statements) and the transactions begun.
No HTTP, no Slack or Teams: what one answer costs below the chat front end.

`modal_submit` is the reschedule modal's submit (`SubmitReschedule`) moving a different future
appointment each time to a free slot before the day's visits (06:00-07:30 in the practice's zone),
and `cancel_confirm` a confirmed cancel of a different future appointment each time: the mix's
writes (`--kinds` chooses; by default every kind).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import tempfile
import time
import uuid
from typing import Any

from sqlalchemy import event

KINDS = ("today_for", "date_for", "appointment", "details", "status", "modal_submit", "cancel_confirm")


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--database-url", default="", help="PostgreSQL instead of SQLite")
    ap.add_argument("--n", type=int, default=400, help="commands of each kind measured")
    ap.add_argument("--kinds", default=",".join(KINDS))
    a = ap.parse_args()
    from cryptography.fernet import Fernet

    from bench import chat_mix as cm

    os.environ["BENCH_SECRET_KEY"] = Fernet.generate_key().decode()
    folder = tempfile.mkdtemp(prefix="chat_cpu")
    schema = ""
    if a.database_url:
        schema = "cpu_" + uuid.uuid4().hex[:8]
        await cm._pg_schema(a.database_url, schema, create=True)
        url = a.database_url
    else:
        url = f"sqlite+aiosqlite:///{folder}/db.sqlite3"
    settings = cm._settings(folder, url, schema)
    world = cm.World()
    await cm.seed(settings, world)
    from bot.commands import actions
    from bot.commands.grammar import parse
    from bot.commands.handlers import handle
    from sync.boot import open_core
    from sync.services.identities import resolve_actor

    core = open_core(settings)
    counts = {"statements": 0, "transactions": 0}

    def count(what: str) -> Any:
        def listener(*_: Any) -> None:
            counts[what] += 1

        return listener

    event.listen(core.store.engine.sync_engine, "before_cursor_execute", count("statements"))
    event.listen(core.store.engine.sync_engine, "begin", count("transactions"))
    rng = random.Random(5)
    staff = [u for u in world.users if u[2] in ("staff", "admin")][:30]
    actors = {(p, n): await resolve_actor(core, "slack", cm.PRACTICES[p][1], cm._user_id("slack", n))
              for p, n, _role, _handle in staff}  # fmt: skip
    keys = list(actors)
    visits = world.appointments[:600]
    # The writes: each future appointment is moved or cancelled once, a move to a slot nobody holds.
    from datetime import UTC, datetime, timedelta
    from zoneinfo import ZoneInfo

    from sqlalchemy import select

    from sync.store.model import Appointment

    async with core.store.session() as s:
        rows = (await s.execute(select(Appointment.id, Appointment.practitioner_id, Appointment.start)
                                .where(Appointment.start > datetime.now(UTC) + timedelta(days=1))
                                .order_by(Appointment.id))).all()  # fmt: skip
    index = {aid: p for aid, p, _ in world.appointments}
    future = [(aid, pr, start, index[aid]) for aid, pr, start in rows]
    random.Random(9).shuffle(future)
    moves, cancels = future[: len(future) // 2], future[len(future) // 2 :]
    early: set[tuple[int, Any, int]] = set()  # (practitioner, day, slot) given out, 4 before 08:00 a day

    def move_of(key: tuple[int, int]) -> Any:
        while True:
            aid, pr, start, p = moves.pop()
            if p != key[0]:
                moves.insert(0, (aid, pr, start, p))
                continue
            tz = ZoneInfo(cm.PRACTICES[p][3])
            day = start.astimezone(tz).date()
            for slot in range(4):
                if (pr, day, slot) not in early:
                    early.add((pr, day, slot))
                    at = f"{6 + slot // 2:02d}:{30 * (slot % 2):02d}"
                    return actions.decode("reschedule_submit", {"a": aid, "v": 1, "d": day.isoformat(), "t": at})

    def cancel_of(key: tuple[int, int]) -> Any:
        while True:
            aid, _pr, _start, p = cancels.pop()
            if p == key[0]:
                return actions.decode("cancel_confirm", {"a": aid, "v": 1})
            cancels.insert(0, (aid, _pr, _start, p))

    def command(kind: str) -> tuple[Any, Any]:
        key = rng.choice(keys)
        p = key[0]
        handle_ = rng.choice(world.handles[p])
        appt = rng.choice([x for x in visits if x[1] == p])
        made = {
            "today_for": lambda: parse(f"today @{handle_}"),
            "date_for": lambda: parse(f"{world.today.isoformat()} @{handle_}"),
            "appointment": lambda: parse(f"appointment A-{appt[0]}"),
            "status": lambda: parse("status"),
            "details": lambda: actions.decode("details", {"a": appt[0]}),
            "modal_submit": lambda: move_of(key),
            "cancel_confirm": lambda: cancel_of(key),
        }[kind]()
        return actors[key], made

    out: dict[str, Any] = {"benchmark": "chat_cpu", "database": "postgresql" if a.database_url else "sqlite",
                           "commands_per_kind": a.n, "per_command": {}}  # fmt: skip
    try:
        for kind in a.kinds.split(","):
            for _ in range(30):  # warm-up
                await handle(core, *command(kind))
            before = dict(counts)
            cpu0 = time.process_time()
            for _ in range(a.n):
                view = await handle(core, *command(kind))
                assert type(view).__name__ not in ("Error", "RescheduleForm"), view
            cpu = (time.process_time() - cpu0) * 1000 / a.n
            out["per_command"][kind] = {
                "cpu_ms": round(cpu, 3),
                "statements": round((counts["statements"] - before["statements"]) / a.n, 2),
                "transactions": round((counts["transactions"] - before["transactions"]) / a.n, 2),
            }
    finally:
        await core.close()
        if a.database_url:
            await cm._pg_schema(a.database_url, schema, create=False)
    out["load_average"] = os.getloadavg()
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    asyncio.run(main())
