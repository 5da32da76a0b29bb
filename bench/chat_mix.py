"""A real clinic's chat traffic, not a best case: Slack and Teams against their baselines, same run.

    python -m bench.chat_mix [--seconds 10] [--connections 64] [--platform slack|teams|both]
                             [--database-url postgresql://postgres@127.0.0.1:5432/test] [--sqlite/--no-sqlite]
                             [--rates 50,100 | --rates ""] [--only today,modal_submit,...]

`--only` sends only those kinds of the mix (one kind's CPU per request). With BENCH_PROFILE=<prefix>
the clinicbot server writes a profile when it stops: a sampled stack profile (wall time) by
default, `BENCH_PROFILER=cprofile` a cProfile of CPU time (time.process_time) as <prefix>.<port>.pstats.

The database holds a realistic practice group: 3 practices, 20 practitioners, 200 chat users per
platform (practitioners linked to their identity, one admin per practice, the rest staff), and
5,000 appointments over 60 days around today, written through the store as the app writes them
(bulk Core inserts through the ORM table, so patient fields are encrypted by their column types).

The load is a closed loop of `--connections` keep-alive connections from Python processes pinned
away from the servers' CPU, each request built and (for Slack) signed at the moment it is sent,
so timestamps are fresh and the modal's trigger_id carries its send time (the fake Slack refuses
`views.open` more than 3 s after it, as Slack does). The mix, by weight (`MIX`): agendas for today,
tomorrow and dates for different practitioners, `appointment A-n` details, button presses (Details,
Reschedule opening the modal / form, Cancel, Cancel confirm), reschedule modal submissions that move
appointments (each a different appointment), `status`, and about 5% first contacts (new people).

Slack: the real server (`clinicbot serve`'s app, tune_for_serving) gets signed slash commands,
block_actions and view_submission payloads at /slack/events; a fake Slack (tests/fakes/slack.py)
on loopback receives the answers at response_url and the Web API calls (views.open). The baseline
is a bare slack-bolt AsyncApp with default settings whose listeners only `ack()` the same request
shapes (command, action, view submission). Teams: message activities and adaptiveCard/action
invokes at /api/messages, answered through the fake Bot Connector; the baseline is the stock
botbuilder echo bot (CloudAdapter sample) on the same activities.

Per side: requests/s, p50/p99 ack latency, p50/p99 time until the real answer reached
response_url / views.open / the connector (the ack itself when the answer is in it), server CPU ms
per request (including work after the ack, until every answer is in), the answer-cache hit rate
(agenda commands answered inside the ack), "busy" replies, and the machine's load average.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

SECRET = "bench-signing-secret"
TOKEN = "xoxb-bench-token"
PRACTICES = (("North Clinic", "T1", "tenant-1", "Europe/London"),
             ("East Clinic", "T2", "tenant-2", "America/New_York"),
             ("South Clinic", "T3", "tenant-3", "Australia/Sydney"))  # fmt: skip
PRACTITIONERS = 20
USERS = 200
APPOINTMENTS = 5000
DAYS = 60
#: kind -> weight (percent). first_contact is a new person's `today`.
MIX = {
    "today": 14, "tomorrow_for": 8, "date_for": 8, "appointment": 12, "status": 6,
    "btn_details": 14, "btn_reschedule": 8, "btn_cancel": 5, "btn_cancel_confirm": 5,
    "modal_submit": 10, "help": 5, "first_contact": 5,
}  # fmt: skip
TARGETS = {"slack_throughput_ratio_min": 1.0, "slack_p99_ack_ms_max": 25.0, "slack_p99_answer_ms_max": 250.0,
           "teams_throughput_ratio_min": 4.0}  # fmt: skip
TRIG = "TRIGGERSLOT"


# --- the practice -------------------------------------------------------------------------------
class World:
    """What the seeding wrote, for building requests: people, practitioners and appointments."""

    def __init__(self, seed: int = 23) -> None:
        self.rng = random.Random(seed)
        # practice index -> practitioner handles; practitioner handle -> practice index
        self.handles: list[list[str]] = [[] for _ in PRACTICES]
        # users: (practice index, n, role, practitioner handle or None)
        self.users: list[tuple[int, int, str, str | None]] = []
        # appointments: (id, practice index, start utc) for the agenda window
        self.appointments: list[tuple[int, int, datetime]] = []
        self.today = datetime.now(UTC).date()
        self.move_pool: list[tuple[int, int, datetime]] | None = None
        self.cancel_pool: list[tuple[int, int, datetime]] = []
        #: Only these kinds of the mix (`--only`), to measure one kind's CPU; empty: the whole mix.
        self.only: set[str] = set()


def _user_id(platform: str, n: int) -> str:
    return f"U{n:05d}" if platform == "slack" else f"29:bench-user-{n}"


async def seed(settings: Any, world: World) -> dict[str, Any]:
    """Migrate and fill the database; returns how long it took and what it wrote."""
    from sqlalchemy import insert, select

    from sync.boot import open_core
    from sync.store.migrate import upgrade
    from sync.store.model import Appointment, ChatIdentity, Practice, Practitioner, Role

    started = time.perf_counter()
    core = open_core(settings)
    try:
        await upgrade(core.store)
        rng = world.rng
        async with core.store.session() as s:
            practice_ids = []
            for name, team, tenant, tz in PRACTICES:
                practice = Practice(name=name, timezone=tz, slack_team_id=team, teams_tenant_id=tenant, settings={})
                s.add(practice)
                await s.flush()
                practice_ids.append(practice.id)
            pr_rows = []
            for i in range(PRACTITIONERS):
                p = i % len(PRACTICES)
                handle = f"dr-{i:02d}"
                world.handles[p].append(handle)
                pr_rows.append({"practice_id": practice_ids[p], "name": f"Dr Bench {i:02d}", "handle": handle,
                                "timezone": PRACTICES[p][3], "reminder_prefs": {}})  # fmt: skip
            await s.execute(insert(Practitioner), pr_rows)
            prs = (await s.execute(select(Practitioner.id, Practitioner.handle, Practitioner.practice_id))).all()
            pr_by_handle = {h: (pid, prac) for pid, h, prac in prs}
            # people: the practitioners first, one admin per practice, the rest staff
            for n in range(USERS):
                p = n % len(PRACTICES)
                if n < PRACTITIONERS:
                    p = n % len(PRACTICES)
                    handle = f"dr-{n:02d}"
                    world.users.append((p, n, "practitioner", handle))
                elif n < PRACTITIONERS + len(PRACTICES):
                    world.users.append((p, n, "admin", None))
                else:
                    world.users.append((p, n, "staff", None))
            for platform in ("slack", "teams"):
                ident_rows = []
                for p, n, _role, handle in world.users:
                    ident_rows.append({
                        "practice_id": practice_ids[p], "platform": platform,
                        "workspace_id": PRACTICES[p][1] if platform == "slack" else PRACTICES[p][2],
                        "user_id": _user_id(platform, n), "display_name": f"bench user {n}",
                        "practitioner_id": pr_by_handle[handle][0] if handle else None,
                    })  # fmt: skip
                await s.execute(insert(ChatIdentity), ident_rows)
                found = await s.execute(
                    select(ChatIdentity.user_id, ChatIdentity.id).where(ChatIdentity.platform == platform)
                )
                ids = dict(found.all())
                role_rows = [{"chat_identity_id": ids[_user_id(platform, n)], "role": role, "granted_by": "bench"}
                             for _p, n, role, _h in world.users]  # fmt: skip
                await s.execute(insert(Role), role_rows)
            # appointments: each practitioner's working days, 30-minute visits on distinct slots, 08:00-17:30
            first = world.today - timedelta(days=DAYS // 2)
            appt_rows = []
            slots_taken: set[tuple[int, date, int]] = set()
            while len(appt_rows) < APPOINTMENTS:
                i = rng.randrange(PRACTITIONERS)
                handle = f"dr-{i:02d}"
                pid, prac = pr_by_handle[handle]
                day = first + timedelta(days=rng.randrange(DAYS))
                slot = rng.randrange(20)
                if (pid, day, slot) in slots_taken:
                    continue
                slots_taken.add((pid, day, slot))
                tz = ZoneInfo(PRACTICES[practice_ids.index(prac)][3])
                local = datetime(day.year, day.month, day.day, 8, 0, tzinfo=tz) + timedelta(minutes=30 * slot)
                start = local.astimezone(UTC)
                k = len(appt_rows)
                appt_rows.append({
                    "practice_id": prac, "practitioner_id": pid, "start": start, "end": start + timedelta(minutes=30),
                    "title": f"Physio - Client {k}", "client_name": f"Client {k} Bench",
                    "client_email": f"client{k}@example.org", "client_phone": f"+44 20 7946 {k % 10000:04d}",
                    "notes": "follow-up after knee surgery" if k % 3 == 0 else None,
                    "service": "Physiotherapy", "tzid": str(tz), "exdates": [], "rdates": [], "status": "confirmed",
                    "version": 1,
                })  # fmt: skip
            await s.execute(insert(Appointment), appt_rows)
            rows = (await s.execute(select(Appointment.id, Appointment.practice_id, Appointment.start))).all()
            index = {pid: i for i, pid in enumerate(practice_ids)}
            world.appointments = [(aid, index[prac], start) for aid, prac, start in rows]
    finally:
        await core.close()
    return {"seconds": round(time.perf_counter() - started, 2), "appointments": APPOINTMENTS, "users": USERS,
            "practitioners": PRACTITIONERS, "practices": len(PRACTICES)}  # fmt: skip


# --- requests -----------------------------------------------------------------------------------
class Mix:
    """Builds the request stream: (kind, rid, platform-specific template) per request."""

    def __init__(self, world: World, tag: str, spend: bool = True) -> None:
        self.w = world
        self.rng = random.Random(tag)
        self.tag = tag
        self.n = 0
        mix = {k: w for k, w in MIX.items() if k in world.only} if world.only else MIX
        kinds, weights = zip(*mix.items(), strict=True)
        self.kinds, self.weights = list(kinds), list(weights)
        if world.move_pool is None:  # each appointment is moved or cancelled once in the whole bench
            now = datetime.now(UTC)
            future = [a for a in world.appointments if a[2] > now + timedelta(hours=2)]
            random.Random(7).shuffle(future)
            half = len(future) // 2
            world.move_pool, world.cancel_pool = future[:half], future[half:]
        if spend:
            self.move_pool, self.cancel_pool = world.move_pool, world.cancel_pool
        else:  # a baseline only acks: it moves nothing, so it must not use up clinicbot's appointments
            self.move_pool, self.cancel_pool = list(world.move_pool), list(world.cancel_pool)
        #: rid -> (pool, appointment) taken for a move or cancel, to give back if never sent
        self.taken: dict[str, tuple[list[tuple[int, int, datetime]], tuple[int, int, datetime]]] = {}

    def give_back(self, records: list[tuple[str, str, float, float, int, int]], refused: set[str] | None = None
                  ) -> None:  # fmt: skip
        """Put the appointments of prepared requests that were never sent, or were refused ("busy":
        `refused`), back in their pools: a load prepares far more requests than it sends, and under
        overload most are refused; neither moved anything, and they must not use up the moves (a
        closed loop that refused most requests left the fixed-rate loads after it with none)."""
        sent = {r[1] for r in records if r[4] != -1} - (refused or set())
        for rid, (pool, appt) in self.taken.items():
            if rid not in sent:
                pool.append(appt)
        self.taken.clear()

    def _user(self, role: str | None = None) -> tuple[int, int, str, str | None]:
        while True:
            user = self.rng.choice(self.w.users)
            if role is None or user[2] in (role, "admin"):
                return user

    def next(self) -> tuple[str, str, dict[str, Any]]:
        self.n += 1
        rid = f"{self.tag}{self.n}"
        kind = self.rng.choices(self.kinds, self.weights)[0]
        if kind in ("modal_submit", "btn_cancel_confirm"):
            pool = self.move_pool if kind == "modal_submit" else self.cancel_pool
            if not pool:
                kind = "btn_details"
        user = self._user("staff" if kind.startswith(("btn_", "modal_")) else None)
        p, n, _role, _h = user
        spec: dict[str, Any] = {"practice": p, "user": n}
        handle = self.rng.choice(self.w.handles[p])
        if kind == "today":
            spec["text"] = "today" if user[3] else f"today @{handle}"
        elif kind == "tomorrow_for":
            spec["text"] = f"tomorrow @{handle}"
        elif kind == "date_for":
            day = self.w.today + timedelta(days=self.rng.randrange(-7, 14))
            spec["text"] = f"{day.isoformat()} @{handle}"
        elif kind == "status":
            spec["text"] = "status"
        elif kind == "help":
            spec["text"] = "help"
        elif kind == "first_contact":
            spec["text"] = "today"
            spec["user"] = 100_000 + self.n  # nobody the database knows
        else:
            appt = self._appointment(p)
            if kind == "appointment":
                spec["text"] = f"appointment A-{appt[0]}"
            elif kind == "btn_details":
                spec["action"] = ("details", {"a": appt[0]})
            elif kind == "btn_reschedule":
                spec["action"] = ("reschedule", {"a": appt[0], "v": 1})
            elif kind == "btn_cancel":
                spec["action"] = ("cancel", {"a": appt[0], "v": 1})
            elif kind == "btn_cancel_confirm":
                taken = self.cancel_pool.pop()
                self.taken[rid] = (self.cancel_pool, taken)
                aid, p2, _ = taken
                spec.update(practice=p2, user=self._user_in(p2), action=("cancel_confirm", {"a": aid, "v": 1}))
            elif kind == "modal_submit":
                taken = self.move_pool.pop()
                self.taken[rid] = (self.move_pool, taken)
                aid, p2, start = taken
                tz = ZoneInfo(PRACTICES[p2][3])
                day = start.astimezone(tz).date() + timedelta(days=self.rng.randrange(1, 4))
                at = f"{self.rng.randrange(6, 8):02d}:{self.rng.choice((0, 15, 30, 45)):02d}"  # before the day's slots
                spec.update(practice=p2, user=self._user_in(p2), submit={"a": aid, "v": 1, "d": day.isoformat(), "t": at})
        return kind, rid, spec

    def _user_in(self, p: int) -> int:
        while True:
            user = self._user("staff")
            if user[0] == p:
                return user[1]

    def _appointment(self, p: int) -> tuple[int, int, datetime]:
        while True:
            appt = self.rng.choice(self.w.appointments)
            if appt[1] == p:
                return appt


def slack_request(kind: str, rid: str, spec: dict[str, Any], sink: str) -> tuple[str, bytes]:
    """(kind, form body with TRIG where the trigger id goes); response_url carries the rid."""
    p, n = spec["practice"], spec["user"]
    team, user = PRACTICES[p][1], _user_id("slack", n)
    response_url = f"{sink}/response/{rid}"
    if "text" in spec:
        fields = {"token": "x", "team_id": team, "team_domain": "bench", "channel_id": "C1", "channel_name": "clinic",
                  "user_id": user, "user_name": f"user{n}", "command": "/clinic", "text": spec["text"],
                  "api_app_id": "A1", "response_url": response_url, "trigger_id": TRIG}  # fmt: skip
        return kind, urlencode(fields).encode()
    who = {"id": user, "username": f"user{n}", "name": f"user{n}", "team_id": team}
    if "action" in spec:
        action_id, value = spec["action"]
        payload: dict[str, Any] = {
            "type": "block_actions", "user": who, "api_app_id": "A1", "token": "x", "team": {"id": team},
            "container": {"type": "message", "message_ts": "1700000000.000100", "channel_id": "C1",
                          "is_ephemeral": True},
            "trigger_id": TRIG, "channel": {"id": "C1"}, "response_url": response_url,
            "actions": [{"action_id": f"clinic.{action_id}", "block_id": f"acts:{value['a']}", "type": "button",
                         "value": json.dumps(value, separators=(",", ":")), "action_ts": "1700000001.0001"}],
        }  # fmt: skip
    else:
        sub = spec["submit"]
        meta = {"action": {"a": sub["a"], "v": sub["v"]},
                "origin": {"r": response_url, "c": "C1", "t": None, "e": True}}  # fmt: skip
        payload = {
            "type": "view_submission", "user": who, "team": {"id": team}, "api_app_id": "A1", "token": "x",
            "trigger_id": TRIG,
            "view": {"id": f"V{rid}", "type": "modal", "callback_id": "clinic.reschedule",
                     "private_metadata": json.dumps(meta, separators=(",", ":")),
                     "state": {"values": {"date": {"value": {"type": "datepicker", "selected_date": sub["d"]}},
                                          "time": {"value": {"type": "timepicker", "selected_time": sub["t"]}}}}},
        }  # fmt: skip
    return kind, urlencode({"payload": json.dumps(payload, separators=(",", ":"))}).encode()


def teams_activity(kind: str, rid: str, spec: dict[str, Any], service_url: str) -> dict[str, Any]:
    p, n = spec["practice"], spec["user"]
    tenant, user = PRACTICES[p][2], _user_id("teams", n)
    base: dict[str, Any] = {
        "id": rid, "serviceUrl": service_url, "channelId": "msteams",
        "from": {"id": user, "name": f"Bench {n}", "aadObjectId": str(uuid.UUID(int=n))},
        "conversation": {"id": f"a:bench-{n}", "conversationType": "personal", "tenantId": tenant},
        "recipient": {"id": "28:bench-bot", "name": "clinicbot"},
        "channelData": {"tenant": {"id": tenant}}, "locale": "en-GB",
    }  # fmt: skip
    if "text" in spec:
        return {**base, "type": "message", "text": spec["text"]}
    if "action" in spec:
        verb, data = spec["action"]
    else:
        verb, data = "reschedule_submit", spec["submit"]
    value = {"action": {"type": "Action.Execute", "verb": verb, "data": data}}
    return {**base, "type": "invoke", "name": "adaptiveCard/action", "value": value, "replyToId": f"card-{rid}"}


# --- the load generator (child processes) --------------------------------------------------------
def _load_worker(url: str, path: str, items: list[tuple[str, str, Any]], conns: int, seconds: float,
                 sync: Any, rate: float = 0.0) -> None:  # fmt: skip
    import hashlib
    import hmac

    import aiohttp

    ready, go, out = sync
    records: list[tuple[str, str, float, float, int, int]] = []  # kind, rid, sent, acked, status, flags
    ready.put(1)
    go.wait()
    until = time.monotonic() + seconds
    secret = SECRET.encode()

    async def run() -> None:
        it = iter(enumerate(items))
        start = time.monotonic()
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=conns)) as session:

            async def loop() -> None:
                for k, (kind, rid, body) in it:
                    if rate:  # open loop: request k is due at start + k / rate, and its latency counts from then
                        due = start + k / rate
                        if due > until:
                            return
                        await asyncio.sleep(max(0.0, due - time.monotonic()))
                        now = due
                    else:
                        now = time.monotonic()
                    if now > until:
                        return
                    if isinstance(body, bytes):  # Slack: fresh timestamp, trigger id with its send time
                        stamp = str(int(time.time()))
                        data = body.replace(TRIG.encode(), f"{rid}.{now:.6f}".encode())
                        sig = hmac.new(secret, b"v0:" + stamp.encode() + b":" + data, hashlib.sha256).hexdigest()
                        headers = {"Content-Type": "application/x-www-form-urlencoded",
                                   "X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": "v0=" + sig}  # fmt: skip
                    else:  # Teams: the activity's JSON text
                        data = body.encode()
                        headers = {"Content-Type": "application/json"}
                    try:
                        async with session.post(url + path, data=data, headers=headers) as resp:
                            text = await resp.read()
                            status = resp.status
                    except aiohttp.ClientError:
                        text, status = b"", 0
                    acked = time.monotonic()
                    flags = (b"busy right now" in text) | ((b'"blocks"' in text) << 1) | ((b"response_action" in text) << 2)
                    records.append((kind, rid, now, acked, status, flags))
                if not rate:  # open loop: the set is sized for the rate; the last ones are simply not due
                    records.append(("", "", 0.0, 0.0, -1, 0))  # ran out of prepared requests

            await asyncio.gather(*(loop() for _ in range(conns)))

    asyncio.run(run())
    out.put(records)


async def drive(url: str, path: str, items: list[tuple[str, str, Any]], connections: int, seconds: float,
                cpus: set[int] | None, procs: int = 2, rate: float = 0.0,
                ) -> list[tuple[str, str, float, float, int, int]]:  # fmt: skip
    ctx = multiprocessing.get_context("spawn")
    ready, go, out = ctx.Queue(), ctx.Event(), ctx.Queue()
    workers = []
    for k in range(procs):
        share = items[k::procs]
        conns = connections // procs + (k < connections % procs)
        w = ctx.Process(target=_load_worker, args=(url, path, share, conns, seconds, (ready, go, out), rate / procs))
        w.start()
        if cpus:
            os.sched_setaffinity(w.pid or 0, cpus)
        workers.append(w)
    for _ in workers:
        await asyncio.to_thread(ready.get)
    go.set()
    results = [await asyncio.to_thread(out.get) for _ in workers]
    for w in workers:
        w.join()
    return [r for part in results for r in part]


# --- servers (child processes) -------------------------------------------------------------------
def _settings(folder: str, database_url: str, schema: str, api_url: str = "", openid_url: str = "") -> Any:
    from sync.runtime.settings import Settings

    return Settings(
        _env_file=None,
        database_url=database_url,  # type: ignore[call-arg]
        database_schema=schema,
        secret_key=os.environ["BENCH_SECRET_KEY"],
        secret_key_file=Path(folder) / "key",
        slack_signing_secret=SECRET,
        slack_bot_token=TOKEN,
        slack_api_url=api_url or "http://127.0.0.1:9/api",
        botframework_openid_url=openid_url or None,
        log_level="WARNING",
        auto_migrate=False,
    )


def _serve_ours(port: int, folder: str, database_url: str, schema: str, api_url: str, openid_url: str) -> None:
    import logging

    from aiohttp import web

    from bot.app import build_app, tune_for_serving

    logging.disable(logging.INFO if os.environ.get("BENCH_SERVER_WARNINGS") else logging.WARNING)
    app = build_app(_settings(folder, database_url, schema, api_url, openid_url))
    tune_for_serving(app)
    profile_to = os.environ.get("BENCH_PROFILE")  # a profile of the server, written when it stops
    if profile_to and os.environ.get("BENCH_PROFILER") == "yappi":  # CPU time per function (pip install yappi)
        import signal

        import yappi  # lazy: an optional profiler, never a dependency

        yappi.set_clock_type("cpu")
        yappi.start()

        def stop(*_: Any) -> None:
            yappi.stop()
            with open(f"{profile_to}.{port}.yappi.txt", "w") as out:
                yappi.get_func_stats().sort("tsub").print_all(out=out, columns={0: ("name", 90), 1: ("ncall", 10),
                                                                                   3: ("tsub", 8), 4: ("ttot", 8)})
            raise SystemExit(0)

        signal.signal(signal.SIGTERM, stop)
    if profile_to and os.environ.get("BENCH_PROFILER") == "cprofile":  # CPU time (process_time) per function
        import cProfile
        import signal

        profiler = cProfile.Profile(time.process_time)

        def dump(*_: Any) -> None:
            profiler.disable()
            profiler.dump_stats(f"{profile_to}.{port}.pstats")
            raise SystemExit(0)

        signal.signal(signal.SIGTERM, dump)
        profiler.enable()
    sampler = _Sampler() if profile_to and os.environ.get("BENCH_PROFILER") not in ("yappi", "cprofile") else None
    if sampler is not None:  # the bench stops its servers with SIGTERM: leave through `finally`, so the profile is written
        import signal

        def leave(*_: Any) -> None:
            raise SystemExit(0)

        signal.signal(signal.SIGTERM, leave)
    try:
        web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None, handle_signals=not profile_to)
    finally:
        if sampler is not None and profile_to:
            sampler.dump(f"{profile_to}.{port}.txt")


class _Sampler:
    """A sampling profiler for the server's main thread (every ms: which functions are on its stack).

    cProfile cannot attribute time across SQLAlchemy's greenlets and asyncio's task switches; a
    sample of the live stack can. Self = the innermost frame; total = anywhere on the stack."""

    def __init__(self, every: float = 0.001) -> None:
        import threading

        self.main = threading.main_thread().ident
        sys.setswitchinterval(0.0002)  # so the sampler gets the GIL between the server's own releases
        self.self_counts: Counter[str] = Counter()
        self.total_counts: Counter[str] = Counter()
        self.samples = 0
        self.every = every
        self.stop = threading.Event()
        threading.Thread(target=self._run, daemon=True, name="sampler").start()

    def _run(self) -> None:
        while not self.stop.wait(self.every):
            frame = sys._current_frames().get(self.main or 0)
            if frame is None:
                continue
            self.samples += 1
            seen = set()
            leaf = True
            while frame is not None:
                code = frame.f_code
                name = f"{code.co_filename.split('site-packages/')[-1].replace(str(Path.cwd()) + '/', '')}:{code.co_name}"
                if leaf:
                    self.self_counts[name] += 1
                    leaf = False
                if name not in seen:
                    seen.add(name)
                    self.total_counts[name] += 1
                frame = frame.f_back

    def dump(self, path: str) -> None:
        self.stop.set()
        with open(path, "w") as out:
            out.write(f"samples {self.samples}\n--- self\n")
            for name, n in self.self_counts.most_common(60):
                out.write(f"{n:7d} {100 * n / max(1, self.samples):5.1f}% {name}\n")
            out.write("--- total\n")
            for name, n in self.total_counts.most_common(150):
                out.write(f"{n:7d} {100 * n / max(1, self.samples):5.1f}% {name}\n")


def _serve_bare_bolt(port: int) -> None:
    import re

    from aiohttp import web
    from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
    from slack_bolt.async_app import AsyncApp
    from slack_bolt.authorization import AuthorizeResult

    async def authorize(**_: Any) -> AuthorizeResult:
        return AuthorizeResult(enterprise_id=None, team_id="T1", bot_token=TOKEN, bot_user_id="UBOT")

    bolt = AsyncApp(signing_secret=SECRET, authorize=authorize)  # default settings

    async def just_ack(ack: Any) -> None:
        await ack()

    bolt.command("/clinic")(just_ack)
    bolt.action(re.compile(r"^clinic\."))(just_ack)
    bolt.view_submission("clinic.reschedule")(just_ack)

    async def events(request: web.Request) -> web.Response:
        return await to_aiohttp_response(await bolt.async_dispatch(await to_bolt_request(request)))

    async def health(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/slack/events", events)
    app.router.add_get("/healthz", health)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


def _serve_stock_echo(port: int) -> None:
    from bench.teams_turns import _serve_stock

    _serve_stock(port)


# --- orchestration ------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cpu_split() -> tuple[set[int] | None, set[int] | None]:
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None, None
    return set(cpus[:-1]), {cpus[-1]}


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _wait_up(url: str, seconds: float = 60) -> None:
    import aiohttp

    deadline = time.monotonic() + seconds
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            try:
                async with session.get(url + "/healthz") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"server at {url} did not come up")


def _pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    v = sorted(values)
    return round(v[min(len(v) - 1, int(p * len(v)))] * 1000, 2)


def _summary(records: list[tuple[str, str, float, float, int, int]], seconds: float) -> dict[str, Any]:
    done = [r for r in records if r[4] != -1]
    exhausted = len(records) - len(done)
    acks = [r[3] - r[2] for r in done]
    ok = [r for r in done if 200 <= r[4] < 300]
    return {
        "requests": len(done),
        "rps": round(len(done) / seconds, 1),
        "ack_p50_ms": _pct(acks, 0.5),
        "ack_p99_ms": _pct(acks, 0.99),
        "status": dict(Counter(str(r[4]) for r in done)),
        "busy_acks": sum(r[5] & 1 for r in ok),
        "request_set_exhausted": exhausted > 0,
    }


class SlackSink:
    """The fake Slack with send-time-aware trigger ids and every response_url accepted."""

    def __init__(self) -> None:
        from tests.fakes.slack import FakeSlack

        class Fake(FakeSlack):
            def _use_trigger(self, args: dict[str, Any]) -> str | None:
                trigger = str(args.get("trigger_id", ""))
                try:
                    sent = float(trigger.split(".", 1)[1])
                except (IndexError, ValueError):
                    return "invalid_trigger_id"
                return "expired_trigger_id" if time.monotonic() - sent > 3 else None

        self.fake = Fake(bot_token=TOKEN)

    def register(self, rids: list[str]) -> None:
        for rid in rids:
            self.fake.responses.setdefault(rid, [])

    def answers(self) -> dict[str, float]:
        """rid -> when its first answer arrived (response_url post, views.open, views.update)."""
        first: dict[str, float] = {}
        for call in self.fake.calls:
            if call.method == "response_url":
                rid = str(call.args.get("rid"))
            elif call.method == "views.open":
                rid = str(call.args.get("trigger_id", "")).split(".", 1)[0]
            elif call.method == "views.update":  # a modal submit's result after "Still working"
                rid = str(call.args.get("view_id", ""))[1:]
            else:
                continue
            first.setdefault(rid, call.at)
        return first


def _answer_times(records: list[tuple[str, str, float, float, int, int]], arrived: dict[str, float]) -> dict[str, Any]:
    latencies, missing = [], Counter()
    by_kind: dict[str, list[float]] = {}
    for kind, rid, sent, acked, status, flags in records:
        if status != 200:
            continue
        if flags & 1:  # "busy": refused, not served (counted apart)
            continue
        if rid in arrived:
            latencies.append(arrived[rid] - sent)
        elif flags & 6 or kind == "help":  # the answer was the ack itself (blocks or modal errors)
            latencies.append(acked - sent)
        else:
            missing[kind] += 1
            continue
        by_kind.setdefault(kind, []).append(latencies[-1])
    return {"answer_p50_ms": _pct(latencies, 0.5), "answer_p99_ms": _pct(latencies, 0.99),
            "answered": len(latencies), "unanswered_by_kind": dict(missing),
            "answer_p50_p99_ms_by_kind": {k: (_pct(v, 0.5), _pct(v, 0.99)) for k, v in sorted(by_kind.items())}}  # fmt: skip


async def _settle(count: Any, want: int, within: float) -> float | None:
    t0 = time.monotonic()
    last, still = -1, t0
    while count() < want:
        now = time.monotonic()
        if now - t0 > within:
            return None
        n = count()
        if n != last:
            last, still = n, now
        elif now - still > 5:  # nothing new for 5 s: the rest are not coming
            return None
        if os.environ.get("BENCH_DEBUG"):
            print(f"settle: {n}/{want} after {now - t0:.1f}s", file=sys.stderr)
        await asyncio.sleep(0.05)
    return round(time.monotonic() - t0, 2)


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.gen_cpus, self.server_cpus = _cpu_split() if args.pin else (None, None)
        self.env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}

    def _spawn(self, *argv: str) -> subprocess.Popen[bytes]:
        pin = ["--cpus", ",".join(map(str, sorted(self.server_cpus)))] if self.server_cpus else []
        return subprocess.Popen([sys.executable, "-m", "bench.chat_mix", "--serve", *argv, *pin], env=self.env)

    async def database(self, url: str | None, folder: str) -> dict[str, Any]:
        """One database (SQLite file when url is None): seed, then both platforms against their baselines."""
        from sync.store.crypto import new_key

        os.environ["BENCH_SECRET_KEY"] = self.env["BENCH_SECRET_KEY"] = new_key()
        schema = ""
        if url is None:
            db_url = f"sqlite+aiosqlite:///{folder}/bench.sqlite3"
        else:
            db_url = url.replace("postgresql://", "postgresql+asyncpg://", 1) if "+" not in url.split("://")[0] else url
            schema = f"bench_chat_{os.getpid()}"
            await _pg_schema(db_url, schema, create=True)
        try:
            world = World()
            world.only = set(self.args.only or ())
            seeded = await seed(_settings(folder, db_url, schema), world)
            out: dict[str, Any] = {"database": "sqlite" if url is None else "postgresql", "seed": seeded}
            if self.args.platform in ("slack", "both"):
                out["slack"] = await self.slack(world, folder, db_url, schema)
            if self.args.platform in ("teams", "both"):
                out["teams"] = await self.teams(world, folder, db_url, schema)
            return out
        finally:
            if schema:
                await _pg_schema(db_url, schema, create=False)

    async def slack(self, world: World, folder: str, db_url: str, schema: str) -> dict[str, Any]:
        a = self.args
        sink = SlackSink()
        await sink.fake.start()
        ours, bare = _free_port(), _free_port()
        procs = {
            "clinicbot": self._spawn("ours", "--port", str(ours), "--folder", folder, "--db", db_url,
                                     "--schema", schema, "--api-url", sink.fake.url + "/api"),
            "bare_bolt": self._spawn("bare-bolt", "--port", str(bare)),
        }  # fmt: skip
        try:
            await _wait_up(f"http://127.0.0.1:{ours}")
            await _wait_up(f"http://127.0.0.1:{bare}")
            sides: dict[str, Any] = {}
            for name, port in (("bare_bolt", bare), ("clinicbot", ours)):
                url = f"http://127.0.0.1:{port}"
                # the warm-up is a different set of people and buttons than the measured load
                await self._slack_load(sink, url, procs[name].pid, world, f"w{name[0]}", a.warmup, 0.0, False,
                                       spend=name == "clinicbot")
                await asyncio.sleep(2 if name == "clinicbot" else 0.5)
                sides[name] = await self._slack_load(sink, url, procs[name].pid, world, f"m{name[0]}", a.seconds,
                                                     0.0, name == "clinicbot", spend=name == "clinicbot")  # fmt: skip
            # Open loop at fixed rates below saturation: what a person waits for when the server keeps up.
            sides["clinicbot"]["at_fixed_rates"] = {
                f"{rate:g}_per_s": await self._slack_load(sink, f"http://127.0.0.1:{ours}", procs["clinicbot"].pid,
                                                          world, f"r{i}x", a.seconds, rate, True)
                for i, rate in enumerate(a.rates)
            }  # fmt: skip
        finally:
            for p in procs.values():
                p.terminate()
            for p in procs.values():
                p.wait(15)
            await sink.fake.stop()
        ours_s, base = sides["clinicbot"], sides["bare_bolt"]
        ratio = round(ours_s["rps"] / base["rps"], 3) if base["rps"] else 0.0
        return {
            "clinicbot": ours_s,
            "bare_bolt": base,
            "throughput_ratio": ratio,
            "met": {
                "throughput_ratio": ratio >= TARGETS["slack_throughput_ratio_min"],
                "p99_ack": (ours_s["ack_p99_ms"] or 1e9) <= TARGETS["slack_p99_ack_ms_max"],
                "p99_answer": (ours_s["answer_p99_ms"] or 1e9) <= TARGETS["slack_p99_answer_ms_max"],
                "no_busy": ours_s["busy_acks"] + ours_s["busy_answers_at_response_url"] == 0,
            },
        }

    async def _slack_load(self, sink: SlackSink, url: str, pid: int, world: World, tag: str, seconds: float,
                          rate: float, answers: bool, spend: bool = True) -> dict[str, Any]:  # fmt: skip
        """One load (closed loop, or open loop at `rate`); with `answers`, wait for and time the answers."""
        a = self.args
        backlog = answers and not await _idle(url, a.drain)  # an earlier load's backlog must not count here
        if backlog:
            print(f"chat_mix: the server still had work queued before {tag}", file=sys.stderr)
        mix = Mix(world, tag, spend)
        prepared = []
        for _ in range(int((rate * 1.2 if rate else a.max_rps) * seconds) + 10):
            kind, rid, spec = mix.next()
            prepared.append((kind, rid, slack_request(kind, rid, spec, sink.fake.url)[1]))
        sink.register([r for _, r, _ in prepared])
        cpu0 = _cpu_seconds(pid)
        calls0 = len(sink.fake.calls)
        hits0, misses0 = await _cache_counts(url) if answers else (0, 0)
        records = await drive(url, "/slack/events", prepared, a.connections, seconds, self.gen_cpus, rate=rate)
        if not answers:
            mix.give_back(records)
        summary = _summary(records, seconds)
        if rate:
            summary["offered_rate_per_s"] = rate
        if answers:
            summary["started_with_a_backlog"] = backlog  # the previous load's answers were still queued
        if answers:
            owed = {r[1] for r in records if r[4] == 200 and not r[5] & 7 and r[0] != "help"}
            took = await _settle(lambda: len(owed & set(sink.answers())), len(owed), a.drain)
            summary["answers_all_in_seconds_after_load"] = took
            summary.update(_answer_times(records, sink.answers()))
            agenda = [r for r in records if r[4] == 200 and r[0] in ("today", "tomorrow_for", "date_for")]
            summary["agendas_answered_in_the_ack"] = round(sum(1 for r in agenda if r[5] & 2) / max(1, len(agenda)), 3)
            hits, misses = await _cache_counts(url)
            summary["answer_cache_lookup_hit_rate"] = round((hits - hits0) / max(1, hits - hits0 + misses - misses0), 3)
            told_busy = {str(c.args.get("rid")) for c in sink.fake.calls[calls0:]
                         if c.method == "response_url" and "busy right now" in str(c.args)}  # fmt: skip
            summary["busy_answers_at_response_url"] = len(told_busy)
            mix.give_back(records, told_busy | {r[1] for r in records if r[5] & 1})
        cpu = _cpu_seconds(pid) - cpu0  # with answers: the work after the acks too, until they are all in
        summary["server_cpu_ms_per_request"] = round(cpu * 1000 / max(1, summary["requests"]), 3)
        summary["kinds"] = dict(Counter(r[0] for r in records if r[4] != -1))
        return summary

    async def teams(self, world: World, folder: str, db_url: str, schema: str) -> dict[str, Any]:
        from tests.fakes.bot_connector import FakeBotConnector

        a = self.args
        arrived: dict[str, float] = {}

        class Stamped(list):  # type: ignore[type-arg]
            """The connector's call log, with when each reply arrived (by the activity it answers)."""

            def append(self, item: Any) -> None:
                body = item[3] if isinstance(item, tuple) and len(item) == 4 else {}
                if isinstance(body, dict) and body.get("replyToId"):
                    arrived.setdefault(str(body["replyToId"]), time.monotonic())
                super().append(item)

        sides: dict[str, Any] = {}
        with FakeBotConnector() as fake:
            fake.recorded.calls = Stamped()
            ours, stock = _free_port(), _free_port()
            procs = {
                "stock_botbuilder_echo": self._spawn("stock-echo", "--port", str(stock)),
                "clinicbot": self._spawn("ours", "--port", str(ours), "--folder", folder, "--db", db_url,
                                         "--schema", schema, "--openid-url", fake.openid_url),
            }  # fmt: skip
            try:
                await _wait_up(f"http://127.0.0.1:{ours}")
                await _wait_up(f"http://127.0.0.1:{stock}")
                for name, port in (("stock_botbuilder_echo", stock), ("clinicbot", ours)):
                    warm = Mix(world, f"tw{name[0]}", spend=name == "clinicbot")
                    warm_items = []
                    for _ in range(int(a.teams_max_rps * a.warmup)):
                        kind, rid, spec = warm.next()
                        warm_items.append((kind, rid, json.dumps(teams_activity(kind, rid, spec, fake.service_url))))
                    warm.give_back(await drive(f"http://127.0.0.1:{port}", "/api/messages", warm_items,
                                               a.connections, a.warmup, self.gen_cpus))  # fmt: skip
                    await asyncio.sleep(1)
                    mix = Mix(world, f"tm{name[0]}", spend=name == "clinicbot")
                    prepared = []
                    for _ in range(int(a.teams_max_rps * a.seconds)):
                        kind, rid, spec = mix.next()
                        prepared.append((kind, rid, json.dumps(teams_activity(kind, rid, spec, fake.service_url))))
                    pid = procs[name].pid
                    cpu0 = _cpu_seconds(pid)
                    records = await drive(f"http://127.0.0.1:{port}", "/api/messages", prepared, a.connections,
                                          a.seconds, self.gen_cpus)  # fmt: skip
                    mix.give_back(records)
                    owed = {r[1] for r in records if 200 <= r[4] < 300 and not r[0].startswith(("btn_", "modal_"))}
                    await _settle(lambda owed=owed: len(owed & arrived.keys()), len(owed), a.drain)
                    summary = _summary(records, a.seconds)
                    cpu = _cpu_seconds(pid) - cpu0
                    summary["server_cpu_ms_per_request"] = round(cpu * 1000 / max(1, summary["requests"]), 3)
                    lat, missing = [], Counter()
                    for kind, rid, sent, acked, status, _f in records:
                        if not 200 <= status < 300:
                            continue
                        if kind.startswith(("btn_", "modal_")):  # an invoke: its answer is the HTTP response
                            lat.append(acked - sent)
                        elif rid in arrived:
                            lat.append(arrived[rid] - sent)
                        else:
                            missing[kind] += 1
                    summary.update(answer_p50_ms=_pct(lat, 0.5), answer_p99_ms=_pct(lat, 0.99), answered=len(lat),
                                   unanswered_by_kind=dict(missing))  # fmt: skip
                    summary["kinds"] = dict(Counter(r[0] for r in records if r[4] != -1))
                    sides[name] = summary
            finally:
                for p in procs.values():
                    p.terminate()
                for p in procs.values():
                    p.wait(15)
        ours_t, base = sides["clinicbot"], sides["stock_botbuilder_echo"]
        ratio = round(ours_t["rps"] / base["rps"], 3) if base["rps"] else 0.0
        return {"clinicbot": ours_t, "stock_botbuilder_echo": base, "throughput_ratio": ratio,
                "met": {"throughput_ratio": ratio >= TARGETS["teams_throughput_ratio_min"]}}  # fmt: skip


async def _cache_counts(url: str) -> tuple[int, int]:
    """The Slack answer cache's (hits, misses) so far, from the server's /metrics."""
    import aiohttp

    counts = {"hit": 0, "miss": 0}
    async with aiohttp.ClientSession() as session, session.get(url + "/metrics") as resp:
        for line in (await resp.text()).splitlines():
            if line.startswith("clinicbot_answer_cache_lookups_total"):
                counts[line.split('result="')[1].split('"')[0]] = int(line.rsplit(" ", 1)[1])
    return counts["hit"], counts["miss"]


async def _idle(url: str, within: float = 60.0) -> bool:
    """Wait until the server has no work queued after acks (its /metrics); False if not within."""
    import aiohttp

    deadline = time.monotonic() + within
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            async with session.get(url + "/metrics") as resp:
                pending = sum(int(line.rsplit(" ", 1)[1]) for line in (await resp.text()).splitlines()
                              if line.startswith("clinicbot_background_pending"))  # fmt: skip
            if pending == 0:
                return True
            await asyncio.sleep(0.2)
    return False


async def _pg_schema(db_url: str, schema: str, create: bool) -> None:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(db_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
            if create:
                await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    finally:
        await engine.dispose()


async def _bench(args: argparse.Namespace) -> dict[str, Any]:
    bench = Bench(args)
    if bench.gen_cpus:
        os.sched_setaffinity(0, bench.gen_cpus)  # the fakes live here: keep them off the servers' CPU
    results = []
    urls: list[str | None] = ([None] if args.sqlite else []) + list(args.database_url or [])
    for url in urls:
        with tempfile.TemporaryDirectory() as folder:
            results.append(await bench.database(url, folder))
    return {
        "benchmark": "chat_mix",
        "mix_percent": MIX,
        "generator": f"python, 2 processes, {args.connections} connections, closed loop, {args.seconds:g}s per side",
        "pinning": {"generator_and_fakes": sorted(bench.gen_cpus or []), "servers": sorted(bench.server_cpus or [])},
        "targets": TARGETS,
        "results": results,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "cpu_count": os.cpu_count(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--drain", type=float, default=30.0, help="seconds to wait for answers after the load")
    parser.add_argument("--max-rps", type=int, default=2500, help="Slack requests prepared per second of load")
    parser.add_argument("--teams-max-rps", type=int, default=1200, help="Teams activities prepared per second")
    parser.add_argument("--platform", choices=["slack", "teams", "both"], default="both")
    parser.add_argument("--rates", type=lambda t: [float(x) for x in t.split(",") if x], default=[50.0, 100.0],
                        help="Slack open-loop rates (requests/s) measured after the closed loop, comma-separated")
    parser.add_argument("--database-url", action="append", help="also run on this PostgreSQL database")
    parser.add_argument("--no-sqlite", dest="sqlite", action="store_false")
    parser.add_argument("--only", type=lambda t: t.split(","), choices=None,
                        help="send only these kinds of the mix (comma-separated, e.g. today,modal_submit): one kind's CPU")
    parser.add_argument("--no-pin", dest="pin", action="store_false")
    parser.add_argument("--serve", choices=["ours", "bare-bolt", "stock-echo"])
    parser.add_argument("--port", type=int)
    parser.add_argument("--folder")
    parser.add_argument("--db")
    parser.add_argument("--schema", default="")
    parser.add_argument("--api-url", default="")
    parser.add_argument("--openid-url", default="")
    parser.add_argument("--cpus")
    args = parser.parse_args()
    if args.only and not set(args.only) <= MIX.keys():
        parser.error(f"--only: unknown kind {sorted(set(args.only) - MIX.keys())}; the kinds are {', '.join(MIX)}")
    if args.cpus:
        os.sched_setaffinity(0, {int(c) for c in args.cpus.split(",")})
    if args.serve == "ours":
        _serve_ours(args.port, args.folder, args.db, args.schema, args.api_url, args.openid_url)
    elif args.serve == "bare-bolt":
        _serve_bare_bolt(args.port)
    elif args.serve == "stock-echo":
        _serve_stock_echo(args.port)
    else:
        print(json.dumps(asyncio.run(_bench(args)), indent=2))


if __name__ == "__main__":
    main()
