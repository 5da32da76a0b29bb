"""Per-mailbox throttling as Microsoft Graph documents it for Outlook resources.

Documented limits (learn.microsoft.com/graph/throttling-limits, "Outlook service limits"), per app
and per mailbox: 10,000 API requests in a 10-minute period and 4 concurrent requests. Each request
inside a JSON $batch counts on its own. Over a limit the service answers 429 with Retry-After and
the code "ApplicationThrottled" ("Application is over its MailboxConcurrency limit.").

`ThrottlePolicy.scaled()` shrinks the time window (and budget) for tests and the benchmark. Real
Retry-After values are whole seconds; a scaled policy writes fractional seconds instead, which is
the one deviation from the service, needed to run a 10-minute window in a second.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["MailboxThrottle", "Rejection", "ThrottlePolicy", "ThrottleStats"]


@dataclass(frozen=True)
class ThrottlePolicy:
    concurrent: int = 4
    budget: int = 10_000
    window: float = 600.0
    #: Retry-After sent when a request finds all concurrency slots taken.
    concurrency_retry_after: float = 1.0
    #: Simulated service time of one mailbox operation, during which it holds a slot.
    op_latency: float = 0.0
    fractional_retry_after: bool = False

    @classmethod
    def scaled(
        cls,
        *,
        window: float,
        budget: int,
        op_latency: float = 0.0,
        concurrency_retry_after: float | None = None,
    ) -> ThrottlePolicy:
        """The documented limits with a shorter window and budget (tests, benchmarks)."""
        return cls(
            budget=budget,
            window=window,
            op_latency=op_latency,
            concurrency_retry_after=concurrency_retry_after if concurrency_retry_after is not None else window / 20,
            fractional_retry_after=True,
        )

    @classmethod
    def unlimited(cls) -> ThrottlePolicy:
        return cls(concurrent=1_000_000, budget=1_000_000_000)

    def retry_after_header(self, seconds: float) -> str:
        if self.fractional_retry_after:
            return f"{max(seconds, 0.001):.3f}"
        return str(max(1, math.ceil(seconds)))


@dataclass(frozen=True)
class Rejection:
    reason: str  # "concurrency" | "budget"
    retry_after: float

    @property
    def message(self) -> str:
        if self.reason == "concurrency":
            return "Application is over its MailboxConcurrency limit."
        return "Application is over its MailboxRequests limit for this period."


@dataclass
class ThrottleStats:
    admitted: int = 0
    rejected_concurrency: int = 0
    rejected_budget: int = 0
    max_in_flight: int = 0
    #: Seconds admitted operations held a slot (simulated service time plus the fake's own work,
    #: valid once all are released): service time a client cannot shorten, whatever it does.
    busy_seconds: float = 0.0


@dataclass
class _Window:
    start: float
    count: int = 0


@dataclass
class MailboxThrottle:
    policy: ThrottlePolicy = field(default_factory=ThrottlePolicy)
    clock: Callable[[], float] = time.monotonic
    in_flight: dict[str, int] = field(default_factory=dict)
    windows: dict[str, _Window] = field(default_factory=dict)
    stats: dict[str, ThrottleStats] = field(default_factory=dict)

    def try_acquire(self, mailbox: str) -> Rejection | None:
        """Take one slot and one unit of budget for `mailbox`, or say why not and for how long."""
        now = self.clock()
        stats = self.stats.setdefault(mailbox, ThrottleStats())
        window = self.windows.get(mailbox)
        if window is None:
            window = self.windows[mailbox] = _Window(start=now)
        elapsed = now - window.start
        if elapsed >= self.policy.window:
            # Fixed windows, anchored at the mailbox's first request.
            window.start += math.floor(elapsed / self.policy.window) * self.policy.window
            window.count = 0
        if self.in_flight.get(mailbox, 0) >= self.policy.concurrent:
            stats.rejected_concurrency += 1
            return Rejection("concurrency", self.policy.concurrency_retry_after)
        if window.count >= self.policy.budget:
            stats.rejected_budget += 1
            return Rejection("budget", window.start + self.policy.window - now)
        window.count += 1
        stats.busy_seconds -= now  # plus the release time: the sum of hold times, whatever the order
        self.in_flight[mailbox] = self.in_flight.get(mailbox, 0) + 1
        stats.admitted += 1
        stats.max_in_flight = max(stats.max_in_flight, self.in_flight[mailbox])
        return None

    def release(self, mailbox: str) -> None:
        self.in_flight[mailbox] = max(0, self.in_flight.get(mailbox, 0) - 1)
        self.stats[mailbox].busy_seconds += self.clock()
