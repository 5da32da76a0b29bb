"""The Graph HTTP client: one httpx client per connection, a per-mailbox request gate, and $batch.

Outlook allows 4 concurrent requests per app and mailbox, and runs up to 4 requests of a JSON
$batch at once, so a batch holds all of its mailbox's slots while it runs. Every request asks for
UTC times, immutable ids, plain-text bodies and a page size. Throttled requests (429/503) are
retried after Retry-After: plain requests by the shared transport (adapters/kit/http.py), the items of
a $batch here, by resending only the throttled items.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from adapters.graph.errors import PROVIDER, graph_error, response_error
from adapters.kit.http import RetryPolicy, make_client, parse_retry_after
from adapters.kit.oauth import RenewingAuth
from sync.contract import BadPayload, ProviderError, Unavailable

__all__ = ["MAILBOX_CONCURRENCY", "MAX_BATCH", "BatchItem", "BatchResult", "GraphClient", "MailboxGate"]

log = logging.getLogger("clinicbot.graph")

#: Graph caps $batch at 20 requests.
MAX_BATCH = 20
#: Outlook allows 4 concurrent requests per app and mailbox.
MAILBOX_CONCURRENCY = 4
#: How often one $batch item is resent after throttling before its 429 goes back to the caller.
BATCH_ATTEMPTS = 12


class MailboxGate:
    """A weighted semaphore of MAILBOX_CONCURRENCY slots for one mailbox."""

    def __init__(self, capacity: int = MAILBOX_CONCURRENCY) -> None:
        self.capacity = capacity
        self._free = capacity
        # First come, first served; a release wakes only the waiters that now fit, so thousands
        # of queued writes cost O(1) per release rather than a stampede.
        self._waiters: deque[tuple[int, asyncio.Future[None]]] = deque()

    async def acquire(self, weight: int = 1) -> None:
        weight = min(weight, self.capacity)
        if not self._waiters and self._free >= weight:
            self._free -= weight
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((weight, future))
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self._free += weight  # granted just as we were cancelled: give it back
                self._wake()
            else:
                self._waiters.remove((weight, future))
            raise

    async def release(self, weight: int = 1) -> None:
        self._free += min(weight, self.capacity)
        self._wake()

    def _wake(self) -> None:
        while self._waiters and self._free >= self._waiters[0][0]:
            weight, future = self._waiters.popleft()
            if future.cancelled():
                continue
            self._free -= weight
            future.set_result(None)


# One gate per (event loop, Graph URL, mailbox): every calendar of a mailbox shares it.
_GATES: weakref.WeakValueDictionary[tuple[int, str], MailboxGate] = weakref.WeakValueDictionary()


def gate_for(base_url: str, mailbox: str) -> MailboxGate:
    """The process's gate for a mailbox (shared by all providers on the same loop)."""
    key = (id(asyncio.get_running_loop()), f"{base_url}|{mailbox.lower()}")
    gate = _GATES.get(key)
    if gate is None:
        gate = MailboxGate()
        _GATES[key] = gate
    return gate


@dataclass(frozen=True)
class BatchItem:
    id: str
    method: str
    url: str  # relative to /v1.0, e.g. "/me/calendar/events"
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    creating: bool = False


@dataclass(frozen=True)
class BatchResult:
    id: str
    status: int
    headers: dict[str, str]
    body: Any

    def error(self, item: BatchItem) -> ProviderError | None:
        """The mapped error for a failed item, or None."""
        if self.status < 400:
            return None
        return graph_error(
            self.status,
            self.body,
            self.headers,
            f"{item.method} {item.url} in $batch",
            creating=item.creating,
        )


class GraphClient:
    """Requests to Graph v1.0 for one connection."""

    def __init__(
        self,
        graph_url: str,
        auth: httpx.Auth,
        mailbox: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        page_size: int = 50,
        policy: RetryPolicy | None = None,
        max_connections: int = 20,
    ) -> None:
        self.graph_url = graph_url.rstrip("/")
        self.base = f"{self.graph_url}/v1.0"
        self.mailbox = mailbox
        self.prefer = (
            'outlook.timezone="UTC", IdType="ImmutableId", outlook.body-content-type="text", '
            f"odata.maxpagesize={page_size}"
        )
        prefer = self.prefer
        self._auth, self._transport, self._page_size, self._policy = auth, transport, page_size, policy
        self.http = make_client(
            self.base,
            headers={"Prefer": prefer, "Accept": "application/json"},
            auth=auth,
            transport=transport,
            policy=policy or RetryPolicy(attempts=5, max_wait=60.0),
            max_connections=max_connections,
        )
        self.requests_sent = 0

    async def aclose(self) -> None:
        await self.http.aclose()

    async def sign_in(self) -> None:
        """Get the connection's token now, so the first request does not wait for it."""
        if isinstance(self._auth, RenewingAuth):
            await self._auth.sign_in()

    def sibling(self, mailbox: str, *, max_connections: int) -> GraphClient:
        """Another client for the same connection (its sign-in shared), with a pool of its own."""
        return GraphClient(self.graph_url, self._auth, mailbox, transport=self._transport, page_size=self._page_size,
                           policy=self._policy, max_connections=max_connections)

    def own_url(self, url: str) -> bool:
        """True when a nextLink/deltaLink points at our Graph: tokens are never sent elsewhere."""
        return url.startswith(self.base + "/")

    async def request(
        self,
        method: str,
        url: str,
        *,
        json: Any = None,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        creating: bool = False,
    ) -> httpx.Response:
        """One request through the mailbox gate; failures raise the mapped ProviderError."""
        gate = gate_for(self.base, self.mailbox)
        await gate.acquire(1)
        try:
            self.requests_sent += 1
            extensions = {"clinicbot_idempotent": True} if creating else None
            response = await self.http.request(
                method, url, json=json, params=params, headers=headers, extensions=extensions
            )
        except httpx.TimeoutException as exc:
            raise Unavailable(f"{PROVIDER}: timed out on {method}", provider=PROVIDER) from exc
        except httpx.HTTPError as exc:
            raise Unavailable(f"{PROVIDER}: {type(exc).__name__} on {method}", provider=PROVIDER) from exc
        finally:
            await gate.release(1)
        if response.status_code >= 400:
            raise response_error(response, creating=creating)
        return response

    async def json(self, method: str, url: str, **kwargs: Any) -> dict[str, Any]:
        """A request whose answer must be a JSON object."""
        response = await self.request(method, url, **kwargs)
        try:
            body = response.json()
        except ValueError:
            raise BadPayload(f"{PROVIDER}: {method} answered with non-JSON", provider=PROVIDER) from None
        if not isinstance(body, dict):
            raise BadPayload(f"{PROVIDER}: {method} answered with a JSON {type(body).__name__}", provider=PROVIDER)
        return body

    async def pages(self, url: str, params: dict[str, str] | None = None,
                    headers: dict[str, str] | None = None) -> AsyncIterator[dict[str, Any]]:
        """Every page of a collection, following @odata.nextLink."""
        next_url: str | None = url
        while next_url:
            page = await self.json("GET", next_url, params=params, headers=headers)
            params = None  # a nextLink carries its own query
            if not isinstance(page.get("value"), list):
                raise BadPayload(f"{PROVIDER}: collection page without a value array", provider=PROVIDER)
            yield page
            link = page.get("@odata.nextLink")
            if link is not None and not (isinstance(link, str) and self.own_url(link)):
                raise BadPayload(f"{PROVIDER}: nextLink points outside {self.base}", provider=PROVIDER)
            next_url = link

    async def batch(self, items: list[BatchItem], *, sequential: bool = True) -> dict[str, BatchResult]:
        """Send items to this mailbox in $batch requests of up to 20, resending throttled items.

        sequential (writes): each batch chains its items with dependsOn, so Graph runs them one
        after another on one mailbox slot, and up to 4 such batches are in flight; a batch's
        network time then overlaps the others' work. An item after a failed one answers 424
        (not run) and is sent again. Otherwise (reads): one batch at a time, its items run 4 at
        once. Either way at most 4 requests run against the mailbox.
        """
        if len({i.id for i in items}) != len(items):
            raise ValueError("batch item ids must be unique")
        run = _BatchRun(self, items, sequential)
        workers = [asyncio.ensure_future(run.worker()) for _ in range(MAILBOX_CONCURRENCY if sequential else 1)]
        done, _ = await asyncio.wait(workers, return_when=asyncio.FIRST_EXCEPTION)
        failed = next((t for t in done if t.exception() is not None), None)
        if failed is not None:
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            raise failed.exception()  # type: ignore[misc]
        return run.results

    async def _send_batch(self, chunk: list[BatchItem], sequential: bool) -> dict[str, BatchResult]:
        # Headers of the $batch request don't reach its items: each carries its own Prefer.
        payload = {"requests": [_batch_request(i, self.prefer) for i in chunk]}
        if sequential:
            for before, item in zip(payload["requests"], payload["requests"][1:], strict=False):
                item["dependsOn"] = [before["id"]]
        try:
            self.requests_sent += 1
            response = await self.http.post("/$batch", json=payload, extensions={"clinicbot_idempotent": True})
        except httpx.HTTPError as exc:
            raise Unavailable(f"{PROVIDER}: {type(exc).__name__} on $batch", provider=PROVIDER) from exc
        if response.status_code >= 400:
            raise response_error(response)
        try:
            answers = response.json()["responses"]
            return {
                str(a["id"]): BatchResult(str(a["id"]), int(a["status"]), dict(a.get("headers") or {}), a.get("body"))
                for a in answers
            }
        except (ValueError, KeyError, TypeError):
            raise BadPayload(f"{PROVIDER}: unreadable $batch answer", provider=PROVIDER) from None


class _BatchRun:
    """The shared queue of one `GraphClient.batch` call and its workers."""

    def __init__(self, client: GraphClient, items: list[BatchItem], sequential: bool) -> None:
        self.client = client
        self.sequential = sequential
        self.pending: deque[BatchItem] = deque(items)
        self.attempts = {i.id: 0 for i in items}
        self.results: dict[str, BatchResult] = {}
        self.in_flight = 0
        self.resume_at = 0.0  # monotonic time before which nobody sends (after a Retry-After)
        self.changed = asyncio.Event()

    async def worker(self) -> None:
        gate = gate_for(self.client.base, self.client.mailbox)
        loop = asyncio.get_running_loop()
        while self.pending or self.in_flight:
            if not self.pending:
                self.changed.clear()
                await self.changed.wait()
                continue
            if (delay := self.resume_at - loop.time()) > 0:
                await asyncio.sleep(delay)
                continue
            chunk = [self.pending.popleft() for _ in range(min(MAX_BATCH, len(self.pending)))]
            weight = 1 if self.sequential else min(MAILBOX_CONCURRENCY, len(chunk))
            self.in_flight += 1
            try:
                await gate.acquire(weight)
                try:
                    answers = await self.client._send_batch(chunk, self.sequential)
                finally:
                    await gate.release(weight)
                self._settle(chunk, answers, loop.time())
            except BaseException:
                self.pending.extendleft(reversed(chunk))
                raise
            finally:
                self.in_flight -= 1
                self.changed.set()

    def _settle(self, chunk: list[BatchItem], answers: dict[str, BatchResult], now: float) -> None:
        retry: list[BatchItem] = []
        for item in chunk:
            answer = answers.get(item.id)
            if answer is None:
                raise BadPayload(f"{PROVIDER}: $batch answer lacks item {item.id}", provider=PROVIDER)
            throttled = answer.status == 429 or (answer.status == 503 and _has(answer.headers, "retry-after"))
            not_run = answer.status == 424 and self.sequential
            if not_run or throttled:
                self.attempts[item.id] += 1
            if (throttled or not_run) and self.attempts[item.id] < BATCH_ATTEMPTS:
                retry.append(item)
                if throttled:
                    wait = parse_retry_after(_get(answer.headers, "retry-after")) or 1.0
                    self.resume_at = max(self.resume_at, now + wait)
            else:
                self.results[item.id] = answer
        # Throttled items go first next time, merged with other batches' leftovers into full batches.
        self.pending.extendleft(reversed(retry))


def _batch_request(item: BatchItem, prefer: str) -> dict[str, Any]:
    request: dict[str, Any] = {"id": item.id, "method": item.method, "url": item.url}
    headers = {"Prefer": prefer, **item.headers}
    if item.body is not None:
        headers.setdefault("Content-Type", "application/json")
        request["body"] = item.body
    if headers:
        request["headers"] = headers
    return request


def _has(headers: dict[str, str], name: str) -> bool:
    return any(k.lower() == name for k in headers)


def _get(headers: dict[str, str], name: str) -> str | None:
    return next((v for k, v in headers.items() if k.lower() == name), None)
