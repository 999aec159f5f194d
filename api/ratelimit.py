"""One rate limiter for every thread of the process, modelled on the server's two pools.

It mirrors the documented algorithm (a static pool of 2 that refills 1 s after its first
use, a burst pool of 30 that refills 60 s after its first use) with a small safety margin,
so a lone process seldom earns a 429: its windows start at its own first use and the
server's at the first arrival, and after a pause the two can fall out of step. What it
cannot know (another process on the same account, a proxy throttling) arrives as 429 or
502 answers; `pause` then holds every thread back. Waiters are served by priority, trades
and flights before market reads.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from enum import IntEnum

from api.errors import Cancelled
from domain.ratelimit import Pool


class Priority(IntEnum):
    """Lower goes first."""

    ACTION = 0  # trades, navigation, docking: a ship is waiting on these
    READ = 1  # ship and agent reads
    REFRESH = 2  # market refreshes and surveys


class RateLimiter:
    MAX_WAIT_SLICE = 0.5  # waiters look at their stop event at least this often

    def __init__(self, per_second: int = 2, burst: int = 30, burst_window: float = 60.0,
                 margin: float = 0.05, clock=time.monotonic):
        self._clock = clock
        self._static = Pool(per_second, 1.0 + margin)
        self._burst = Pool(burst, burst_window + margin)
        self._paused_until = 0.0
        self._cond = threading.Condition()
        self._queue: list[tuple[int, int]] = []
        self._tickets = itertools.count()
        self.granted = 0
        self.waited = 0.0
        self._gateway_streak = 0  # 502s in a row, process-wide

    @classmethod
    def unlimited(cls) -> RateLimiter:
        """For a local server run without a rate limit (tests, benchmarks)."""
        return cls(per_second=1_000_000, burst=0, margin=0.0)

    def acquire(self, priority: Priority = Priority.READ,
                stop: threading.Event | None = None) -> None:
        """Block until this caller may send one request; Cancelled if `stop` is set."""
        started = self._clock()
        with self._cond:
            ticket = (int(priority), next(self._tickets))
            heapq.heappush(self._queue, ticket)
            try:
                while True:
                    if stop is not None and stop.is_set():
                        raise Cancelled("stopped while waiting for the rate limit")
                    now = self._clock()
                    wait = self._wait(now)
                    if wait <= 0 and self._queue[0] == ticket:
                        pool = self._static if self._static.points > 0 else self._burst
                        pool.take(now)
                        heapq.heappop(self._queue)
                        self.granted += 1
                        self.waited += now - started
                        self._cond.notify_all()
                        return
                    self._cond.wait(min(max(wait, 0.001), self.MAX_WAIT_SLICE))
            except BaseException:
                if ticket in self._queue:
                    self._queue.remove(ticket)
                    heapq.heapify(self._queue)
                    self._cond.notify_all()
                raise

    def pause(self, seconds: float) -> None:
        """Hold every request back for `seconds` (a 429 or a 502 said so)."""
        with self._cond:
            self._paused_until = max(self._paused_until, self._clock() + seconds)
            self._cond.notify_all()

    def gateway_failed(self) -> int:
        """Count a 502; returns how many came in a row (any other answer resets it)."""
        with self._cond:
            self._gateway_streak += 1
            return self._gateway_streak

    def answered(self) -> None:
        """The server answered with something other than a 502."""
        if self._gateway_streak:
            with self._cond:
                self._gateway_streak = 0

    def _wait(self, now: float) -> float:
        """Seconds until a request may go (0 or less: now)."""
        if now < self._paused_until:
            return self._paused_until - now
        self._static.refresh(now)
        self._burst.refresh(now)
        if self._static.points > 0 or self._burst.points > 0:
            return 0.0
        resets = [p.resets_at - now for p in (self._static, self._burst) if p.resets_at]
        return min(resets, default=self.MAX_WAIT_SLICE)
