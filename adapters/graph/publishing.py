"""Publishing shifts into people's Outlook calendars with application permissions.

Each shift is one event in `users/{upn}/events`:
- created with a `transactionId`, so a create retried after a lost answer returns the first event;
- marked with two single-value extended properties: the shift source's key (the filter that finds
  clinicbot's own shift events, and nothing else) and the shift id;
- `showAs` busy or free, a category, and a text body holding only what the assignment's flags allow.

Writes go in $batch requests of up to 20 that mix mailboxes (one item per mailbox per batch, 4
batches in flight: never more than Graph's 4 concurrent requests per mailbox), throttled items
resent after their Retry-After. Only events carrying the source's mark are updated or deleted.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections import deque
from collections.abc import AsyncIterable, Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from adapters.graph import teams_shifts
from adapters.graph.client import BATCH_ATTEMPTS, MAILBOX_CONCURRENCY, MAX_BATCH, BatchItem, BatchResult, GraphClient
from adapters.graph.connection import auth_config, is_application, open_client
from adapters.graph.errors import PROVIDER
from adapters.graph.mapping import parse_graph_datetime
from adapters.kit.http import parse_retry_after
from sync.contract import BadPayload, ConnectionInfo, NotFound, ProviderError, Refused
from sync.contract.shifts import (
    LookalikeEvent,
    MailboxWork,
    OwnEvent,
    PublishOp,
    PublishResult,
    ShiftEvent,
    TeamsAccess,
    TeamsShiftOp,
    TeamsTarget,
)

__all__ = ["SHIFT_ID_PROPERTY", "SHIFT_SOURCE_PROPERTY", "GraphPublishing", "GraphShiftPublisher", "event_body"]

log = logging.getLogger("clinicbot.graph.shifts")

#: Named MAPI string properties in the PS_PUBLIC_STRINGS set, as Graph documents for app-defined marks.
SHIFT_SOURCE_PROPERTY = "String {00020329-0000-0000-C000-000000000046} Name clinicbotShiftSource"
SHIFT_ID_PROPERTY = "String {00020329-0000-0000-C000-000000000046} Name clinicbotShiftId"


def _mailbox_path(ref: str) -> str:
    if not ref or "/" in ref or any(c.isspace() for c in ref) or len(ref) > 320:
        raise Refused(f"{PROVIDER}: {ref!r} is not a UPN or object id", provider=PROVIDER)
    return f"users/{quote(ref, safe='@.-_')}"


def _time(moment: datetime) -> dict[str, str]:
    return {"dateTime": moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"}


def event_body(event: ShiftEvent) -> dict[str, Any]:
    """The Graph event fields a shift event sets (a PATCH sends all of them, so an update converges)."""
    return {
        "subject": event.subject,
        "start": _time(event.start),
        "end": _time(event.end),
        "showAs": event.show_as,
        "body": {"contentType": "text", "content": event.body},
        "categories": [event.category] if event.category else [],
        "isReminderOn": False,
        "responseRequested": False,
    }


class GraphShiftPublisher:
    """Writes shift events for one application (practice-wide) Graph connection."""

    def __init__(self, conn: ConnectionInfo, host: Any) -> None:
        if not is_application(conn):
            raise Refused(
                f"{PROVIDER}: publishing shifts needs the practice-wide (application) Outlook connection",
                provider=PROVIDER,
            )
        self.conn = conn
        self.host = host
        self._clients: dict[str, GraphClient] = {}
        #: Requests made, for the summary and the benchmark.
        self.requests = 0

    def _client(self, mailbox: str, *, connections: int = 20) -> GraphClient:
        path = _mailbox_path(mailbox)
        client = self._clients.get(path)
        if client is None:
            # One sign-in for the connection: later clients share the first one's tokens.
            first = next(iter(self._clients.values()), None)
            client = first.sibling(path, max_connections=connections) if first is not None else \
                open_client(self.conn, self.host, path, max_connections=connections)[0]
            self._clients[path] = client
        return client

    async def aclose(self) -> None:
        for client in self._clients.values():
            self.requests += client.requests_sent
            await client.aclose()
        self._clients.clear()

    async def warm(self) -> None:
        """Sign in while the caller plans; a failure here is left for the first request to report."""
        try:
            await self._client("directory", connections=16).sign_in()
        except Exception as exc:  # any failure repeats on the first request, which reports it
            log.debug("sign-in ahead of the publish failed", extra={"error": f"{type(exc).__name__}: {exc}"[:200]})

    async def _directory(self, refs: Sequence[str]) -> dict[str, str | None]:
        """Each ref -> its object id, None when the directory does not know it."""
        unique = sorted({r for r in refs if r})
        if not unique:
            return {}
        # Directory lookups are not mailbox requests, so they pass no mailbox's request gate: every
        # call goes out at once (a publish's chunks of 20 people are checked side by side, and every
        # mailbox's writes can start together: one whose check came back late would finish late,
        # whatever the others do). Items Graph throttles are sent again through the client's gate.
        client = self._client("directory", connections=16)
        items = [BatchItem(id=str(i), method="GET", url=f"/{_mailbox_path(ref)}?$select=id,userPrincipalName")
                 for i, ref in enumerate(unique)]
        answers: dict[str, BatchResult] = {}
        for first in range(0, len(items), MAX_BATCH):
            answers.update(await client._send_batch(items[first:first + MAX_BATCH], False))
        again = [item for item in items if item.id not in answers or _throttled(answers[item.id])]
        if again:
            answers.update(await client.batch(again, sequential=False))
        out: dict[str, str | None] = {}
        for item, ref in zip(items, unique, strict=True):
            answer = answers[item.id]
            if answer.status == 404:
                out[ref] = None
            elif (err := answer.error(item)) is not None:
                raise err
            else:
                found = answer.body.get("id") if isinstance(answer.body, dict) else None
                if not isinstance(found, str):
                    raise BadPayload(f"{PROVIDER}: a user without an id", provider=PROVIDER)
                out[ref] = found
        return out

    async def unknown_people(self, refs: Sequence[str]) -> list[str]:
        return [ref for ref, found in (await self._directory(refs)).items() if found is None]

    async def user_ids(self, refs: Sequence[str]) -> dict[str, str]:
        return {ref: found for ref, found in (await self._directory(refs)).items() if found is not None}

    async def teams_ready(self, team_id: str, acts_as: str, zone: str, user_ids: Sequence[str]) -> TeamsTarget:
        return await teams_shifts.ready(self._client(team_id), team_id, acts_as, zone, user_ids)

    async def teams_marked(self, target: TeamsTarget, start: datetime, end: datetime) -> dict[str, str]:
        return await teams_shifts.marked(self._client(target.team_id), target, start, end)

    async def teams_lookalikes(self, team_id: str, acts_as: str, wanted: Sequence[tuple[str, datetime, datetime]]
                               ) -> list[tuple[str, datetime, datetime]]:
        return await teams_shifts.lookalikes(self._client(team_id), team_id, acts_as, wanted)

    async def teams_access(self, team_id: str, acts_as: str) -> TeamsAccess:
        found = await teams_shifts.access(self._client(team_id), team_id, acts_as)
        tenant = (self.conn.credentials or {}).get("tenant_id") or self.conn.config.get("tenant_id")
        return replace(found, app_id=auth_config(self.conn, self.host).client_id, tenant_id=str(tenant or ""))

    async def teams_write(self, target: TeamsTarget, ops: Sequence[TeamsShiftOp]) -> list[PublishResult]:
        return await teams_shifts.write(self._client(target.team_id), target, ops)

    async def own_events(self, mailbox: str, source_key: str) -> list[OwnEvent]:
        client = self._client(mailbox)
        params = {
            "$filter": f"singleValueExtendedProperties/Any(ep: ep/id eq '{SHIFT_SOURCE_PROPERTY}' "
            f"and ep/value eq '{_quote(source_key)}')",
            "$expand": f"singleValueExtendedProperties($filter=id eq '{SHIFT_ID_PROPERTY}')",
            "$select": "id,subject,start,end",
        }
        found: list[OwnEvent] = []
        async for page in client.pages(f"/{_mailbox_path(mailbox)}/events", params=params):
            for raw in page["value"]:
                if not isinstance(raw, dict) or not isinstance(raw.get("id"), str):
                    raise BadPayload(f"{PROVIDER}: an event without an id", provider=PROVIDER)
                key = _prop(raw, SHIFT_ID_PROPERTY)
                if key is None:
                    continue  # marked for the source but without a shift id: not one of ours to touch
                found.append(OwnEvent(
                    shift_key=key, remote_id=raw["id"], subject=str(raw.get("subject") or ""),
                    start=parse_graph_datetime(raw.get("start"), what="start") if raw.get("start") else None,
                    end=parse_graph_datetime(raw.get("end"), what="end") if raw.get("end") else None,
                ))
        return found

    async def write(self, source_key: str, work: Mapping[str, Sequence[PublishOp]] | AsyncIterable[MailboxWork],
                    landed: Callable[[str, PublishResult], None] | None = None) -> dict[str, list[PublishResult]]:
        """Perform every mailbox's ops in $batch requests of up to 20 that mix mailboxes.

        Graph's limit is 4 concurrent requests per mailbox. A batch holds at most one item per
        mailbox and runs without dependsOn, and a mailbox is in at most 4 batches in flight, so it
        never sees more than 4 requests at once, while 5,000 shifts for 200 people take 250 requests
        instead of one or more per person. Throttled items (429, or 503 with Retry-After) are sent
        again after the Retry-After, alone or merged into later batches.

        A streamed `work` starts writing as soon as 20 mailboxes are in (a full batch); until the
        stream ends only full batches go, so streaming costs no extra requests. The last, partial round
        of batches goes in smaller batches, within 5% more requests than the minimum (`_batch_size`).
        """
        results: dict[str, list[PublishResult]] = {}
        run = _MixedRun(self, source_key, results, landed)
        if isinstance(work, Mapping):
            for mailbox, ops in work.items():
                run.add(mailbox, ops)
            run.fed = True
            await run.go(None)
        else:
            await run.go(work)
        return results

    async def lookalikes(self, mailbox: str, events: Sequence[ShiftEvent]) -> list[LookalikeEvent]:
        if not events:
            return []
        client = self._client(mailbox)
        start = min(e.start for e in events)
        end = max(e.end for e in events) + timedelta(minutes=1)
        wanted = {(e.subject.casefold(), e.start.astimezone(UTC), e.end.astimezone(UTC)) for e in events}
        params = {
            "startDateTime": start.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "endDateTime": end.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "$select": "id,subject,start,end",
            "$expand": f"singleValueExtendedProperties($filter=id eq '{SHIFT_SOURCE_PROPERTY}')",
        }
        found: list[LookalikeEvent] = []
        async for page in client.pages(f"/{_mailbox_path(mailbox)}/calendarView", params=params):
            for raw in page["value"]:
                if not isinstance(raw, dict) or _prop(raw, SHIFT_SOURCE_PROPERTY) is not None:
                    continue
                try:
                    s = parse_graph_datetime(raw.get("start"), what="start")
                    e = parse_graph_datetime(raw.get("end"), what="end")
                except BadPayload:
                    continue
                subject = str(raw.get("subject") or "")
                if (subject.casefold(), s, e) in wanted:
                    found.append(LookalikeEvent(subject=subject, start=s, end=e))
        return found


#: The most $batch requests in flight at once.
MAX_BATCHES_IN_FLIGHT = 64
#: Graph runs this many requests of a $batch at a time: a batch of 20 takes 5 service times.
ITEMS_AT_ONCE = 4
#: The share of requests above the minimum (one per 20 writes) a publish may spend on smaller last
#: batches, so its tail runs on every writer instead of a few full batches one after another.
SPARE_REQUESTS = 0.05
#: Connections per httpx client for the batches: httpcore's pool walks every connection on each
#: request, so 40 batches in flight go through 5 small pools rather than one of 40.
CONNECTIONS_PER_POOL = 8


def batches_in_flight(mailboxes: int) -> int:
    """$batch requests to keep in flight for `mailboxes` with writes.

    Graph runs 4 requests of a batch at a time, and each mailbox may have 4 items in flight (its
    concurrency limit, counted across the batches). Enough full batches to carry 4 items of every
    mailbox keep every mailbox busy: 4 x mailboxes / 20, at least 4, at most MAX_BATCHES_IN_FLIGHT.
    """
    return max(4, min(MAX_BATCHES_IN_FLIGHT, _full_batches(MAILBOX_CONCURRENCY * mailboxes)))


def _full_batches(items: int) -> int:
    """The fewest $batch requests that carry `items` writes."""
    return -(-items // MAX_BATCH)


def _slug(mailbox: str) -> str:
    return hashlib.sha256(mailbox.encode()).hexdigest()[:12]


def _item(item_id: str, base: str, source_key: str, op: PublishOp) -> BatchItem:
    if op.kind == "create":
        if op.event is None:
            raise ValueError("a create needs its event")
        body = event_body(op.event) | {
            "transactionId": op.transaction_id,
            "singleValueExtendedProperties": [
                {"id": SHIFT_SOURCE_PROPERTY, "value": source_key},
                {"id": SHIFT_ID_PROPERTY, "value": op.shift_key},
            ],
        }
        return BatchItem(id=item_id, method="POST", url=base, body=body, creating=True)
    if not op.remote_id:
        raise ValueError(f"an {op.kind} needs its remote id")
    url = f"{base}/{quote(op.remote_id, safe='')}"
    if op.kind == "update":
        if op.event is None:
            raise ValueError("an update needs its event")
        return BatchItem(id=item_id, method="PATCH", url=url, body=event_body(op.event))
    return BatchItem(id=item_id, method="DELETE", url=url)


def _result(item: BatchItem, op: PublishOp, answer: BatchResult) -> PublishResult:
    err: ProviderError | None = answer.error(item)
    if op.kind == "delete" and isinstance(err, NotFound):
        err = None  # already gone: what a delete wants
    remote_id = op.remote_id
    if err is None and op.kind != "delete":
        found = answer.body.get("id") if isinstance(answer.body, dict) else None
        if isinstance(found, str):
            remote_id = found
        else:
            err = BadPayload(f"{PROVIDER}: {item.method} answered without an event id", provider=PROVIDER)
    return PublishResult(shift_key=op.shift_key, kind=op.kind, remote_id=remote_id, error=err)


class _MixedRun:
    """The batches of one `write`: one item per mailbox per batch, at most 4 items in flight per mailbox."""

    def __init__(self, publisher: GraphShiftPublisher, source_key: str, results: dict[str, list[PublishResult]],
                 landed: Callable[[str, PublishResult], None] | None) -> None:
        self.publisher = publisher
        self.source_key = source_key
        #: Per mailbox, its ops waiting: (mailbox, the item, or its id until the item is built, op).
        self.queues: dict[str, deque[tuple[str, BatchItem | str, PublishOp]]] = {}
        self.bases: dict[str, str] = {}
        self.results = results
        self.landed = landed
        self.attempts: dict[str, int] = {}
        self.in_flight: dict[str, int] = {}
        self.resume_at: dict[str, float] = {}
        self.changed = asyncio.Event()
        self.workers: list[asyncio.Future[None]] = []
        #: True once every mailbox's work is in (a partial batch may go).
        self.fed = False
        #: Items added, items waiting in the queues, and $batch requests sent (resends included).
        self.added = 0
        self.queued = 0
        self.sent = 0
        #: Batches in flight.
        self.flying = 0

    def add(self, mailbox: str, ops: Sequence[PublishOp]) -> None:
        self.bases.setdefault(mailbox, f"/{_mailbox_path(mailbox)}/events")
        queue = self.queues.setdefault(mailbox, deque())
        self.results.setdefault(mailbox, [])
        slug = _slug(mailbox)
        # Each item's body is built when its batch is made, so a big publish's first batches do not
        # wait for every event's JSON.
        for op in ops:
            queue.append((mailbox, f"{len(queue)}-{slug}", op))
        self.added += len(ops)
        self.queued += len(ops)
        self._spawn()
        self.changed.set()

    def _spawn(self) -> None:
        busy = sum(1 for q in self.queues.values() if q)
        wanted = batches_in_flight(busy) if busy else 0
        while len(self.workers) < wanted:
            # One connection a batch in flight, in pools of CONNECTIONS_PER_POOL.
            pool = len(self.workers) // CONNECTIONS_PER_POOL
            client = self.publisher._client(f"shift-batches-{pool}", connections=CONNECTIONS_PER_POOL)
            self.workers.append(asyncio.ensure_future(self._worker(client)))

    def _allowed(self) -> int:
        """The requests this run may send: the minimum, one per 20 writes, plus SPARE_REQUESTS."""
        return int(_full_batches(self.added) * (1 + SPARE_REQUESTS))

    def _batch_size(self) -> int:
        """How many items the next batch may carry: 20, except for the tail of a fed run.

        Every writer sends full batches, round after round. What is left after the full rounds (5,000
        writes on 40 writers: 6 rounds of 800, then 200) would go in a few full batches, each running
        its 5 service times while the other writers idle. That last round is spread over more, smaller
        batches (a multiple of what Graph runs at once), spending at most SPARE_REQUESTS above the
        minimum request count in all: 200 writes in 17 batches of 12 take 3 service times, not 5.
        """
        remaining = self.queued
        if not self.fed or not remaining:
            return MAX_BATCH
        # Full rounds (every writer sending a full batch) go as they are; what is left after them is the
        # last, partial round, which every writer can share.
        last_round = self.added % (MAX_BATCH * len(self.workers))
        if not last_round or remaining > last_round:
            return MAX_BATCH
        full = _full_batches(remaining)
        budget = self._allowed() - self.sent
        if budget <= full:
            return MAX_BATCH
        size = -(-remaining // min(len(self.workers), budget))
        size = -(-size // ITEMS_AT_ONCE) * ITEMS_AT_ONCE
        return max(ITEMS_AT_ONCE, min(MAX_BATCH, size))

    def _next_batch(self, now: float) -> list[tuple[str, BatchItem, PublishOp]]:
        ready: list[deque[tuple[str, BatchItem | str, PublishOp]]] = []
        size = self._batch_size()
        queues: Iterable[tuple[str, deque[tuple[str, BatchItem | str, PublishOp]]]] = self.queues.items()
        if self.fed:
            # Longest queues first: the mailboxes with the most writes left set when the run ends.
            queues = sorted(queues, key=lambda kv: -len(kv[1]))
        for mailbox, queue in queues:
            if len(ready) == size:
                break
            if queue and self.in_flight.get(mailbox, 0) < MAILBOX_CONCURRENCY \
                    and self.resume_at.get(mailbox, 0.0) <= now:
                ready.append(queue)
        if not ready or (len(ready) < MAX_BATCH and not self.fed):
            return []  # nothing ready, or more mailboxes are coming: wait to send a full batch
        if len(ready) < size and self.flying:
            # A short batch now must leave enough requests in the budget for what stays queued; if it
            # would not, wait for batches in flight to free more mailboxes. (Past the budget, as after
            # throttled resends, whatever is ready goes.)
            budget = self._allowed() - self.sent
            if budget > 0 and _full_batches(self.queued - len(ready)) > budget - 1:
                return []
        chunk: list[tuple[str, BatchItem, PublishOp]] = []
        for queue in ready:
            mailbox, item, op = queue.popleft()
            if isinstance(item, str):
                item = _item(item, self.bases[mailbox], self.source_key, op)
            chunk.append((mailbox, item, op))
        self.queued -= len(chunk)
        self.sent += 1
        self.flying += 1
        for entry in chunk:
            self.in_flight[entry[0]] = self.in_flight.get(entry[0], 0) + 1
        return chunk

    def _waiting(self) -> bool:
        return any(self.queues.values())

    async def go(self, stream: AsyncIterable[MailboxWork] | None) -> None:
        try:
            if stream is not None:
                async for mailbox, ops in stream:
                    self.add(mailbox, ops)
                    if self.workers and len(self.queues) % MAX_BATCH == 0:
                        # Let the writers send what is ready before the stream makes the next mailboxes'
                        # events (a stream whose directory answers are in never waits by itself).
                        await asyncio.sleep(0)
                self.fed = True
                self.changed.set()
            self._spawn()
            # Workers may be added while others run (a stream's later mailboxes): wait for all.
            done = 0
            while done < len(self.workers):
                await self.workers[done]
                done += 1
        except BaseException:
            for task in self.workers:
                task.cancel()
            await asyncio.gather(*self.workers, return_exceptions=True)
            raise

    async def _worker(self, client: GraphClient) -> None:
        loop = asyncio.get_running_loop()
        while not self.fed or self._waiting():
            chunk = self._next_batch(loop.time())
            if not chunk:
                if self.fed and not self._waiting():
                    return
                # Woken by a batch coming back or more work fed; by the clock for a Retry-After.
                later = [t for m, t in self.resume_at.items() if self.queues.get(m) and t > loop.time()]
                self.changed.clear()
                try:
                    await asyncio.wait_for(self.changed.wait(),
                                           timeout=max(0.005, min(later) - loop.time()) if later else None)
                except TimeoutError:
                    pass
                continue
            try:
                answers = await client._send_batch([item for _m, item, _op in chunk], False)
            except BaseException:
                for entry in reversed(chunk):
                    self.queues[entry[0]].appendleft(entry)
                self.queued += len(chunk)
                raise
            finally:
                self.flying -= 1
                for entry in chunk:
                    self.in_flight[entry[0]] -= 1
            now = loop.time()
            for mailbox, item, op in chunk:
                answer = answers.get(item.id)
                if answer is None:
                    raise BadPayload(f"{PROVIDER}: $batch answer lacks item {item.id}", provider=PROVIDER)
                throttled = _throttled(answer)
                self.attempts[item.id] = self.attempts.get(item.id, 0) + int(throttled)
                if throttled and self.attempts[item.id] < BATCH_ATTEMPTS:
                    wait = parse_retry_after(_header(answer.headers, "retry-after")) or 1.0
                    self.resume_at[mailbox] = max(self.resume_at.get(mailbox, 0.0), now + wait)
                    self.queues[mailbox].appendleft((mailbox, item, op))
                    self.queued += 1
                else:
                    result = _result(item, op, answer)
                    self.results[mailbox].append(result)
                    if self.landed is not None:
                        self.landed(mailbox, result)
            self.changed.set()


def _throttled(answer: BatchResult) -> bool:
    return answer.status == 429 or (answer.status == 503 and _header(answer.headers, "retry-after") is not None)


def _header(headers: dict[str, str], name: str) -> str | None:
    return next((v for k, v in headers.items() if k.lower() == name), None)


def _quote(value: str) -> str:
    return value.replace("'", "''")


def _prop(event: dict[str, Any], prop_id: str) -> str | None:
    for prop in event.get("singleValueExtendedProperties") or []:
        if isinstance(prop, dict) and str(prop.get("id", "")).lower() == prop_id.lower():
            value = prop.get("value")
            return value if isinstance(value, str) else None
    return None


class GraphPublishing:
    """The publishing slot of the Graph integration."""

    def open(self, conn: ConnectionInfo, host: Any) -> GraphShiftPublisher:
        return GraphShiftPublisher(conn, host)

