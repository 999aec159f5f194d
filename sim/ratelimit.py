"""The server side of the documented rate limit: a static and a burst pool per key.

The static pool holds 2 points and refills 1 s after its first use; the burst pool holds
30 and refills 60 s after its first use. Requests draw on the static pool first, then on
the burst pool; with both empty the answer is 429 (api-docs wiki, "Ratelimit").
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass

from domain.ratelimit import Pool


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    type: str
    remaining: int
    reset_in: float  # seconds until some point is back
    per_second: int
    burst: int

    @property
    def retry_after(self) -> int:
        return max(1, math.ceil(self.reset_in))


class TwoPoolLimiter:
    def __init__(self, per_second: int = 2, burst: int = 30, burst_window: float = 60.0,
                 now=time.monotonic):
        self.per_second, self.burst, self.burst_window = per_second, burst, burst_window
        self._now = now
        self._pools: dict[str, tuple[Pool, Pool]] = {}
        self._lock = threading.Lock()

    def _pools_for(self, key: str) -> tuple[Pool, Pool]:
        if key not in self._pools:
            self._pools[key] = (Pool(self.per_second, 1.0), Pool(self.burst, self.burst_window))
        return self._pools[key]

    def take(self, keys: dict[str, str]) -> Verdict:
        """Charge one request to every key (type -> key), or refuse it if any is empty."""
        with self._lock:
            now = self._now()
            pools = {t: self._pools_for(k) for t, k in keys.items()}
            for static, burst in pools.values():
                static.refresh(now)
                burst.refresh(now)
            for type_, (static, burst) in pools.items():
                if static.points <= 0 and burst.points <= 0:
                    waits = [p.resets_at - now for p in (static, burst) if p.resets_at]
                    return Verdict(False, type_, 0, min(waits, default=1.0), self.per_second,
                                   self.burst)
            remaining = []
            for static, burst in pools.values():
                (static if static.points > 0 else burst).take(now)
                remaining.append(static.points + burst.points)
            static, _ = next(iter(pools.values()))
            reset_in = (static.resets_at - now) if static.resets_at else 1.0
            return Verdict(True, next(iter(pools)), min(remaining), reset_in, self.per_second,
                           self.burst)
