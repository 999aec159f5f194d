"""Fault injection for drills: throttling, server errors, slowness and a lost ship.

A plan is written as comma-separated items, e.g. `429=0.1,500=0.05,502burst=5:40,lose=30`:

| item | effect |
|---|---|
| `429=P` | with probability P, a 429 with the real rate-limit headers and body |
| `429bare=P` | with probability P, a 429 with neither headers nor JSON (as cloud proxies send) |
| `500=P` | with probability P, a 500 (code 3000) before the request is processed |
| `500after=P` | with probability P, the request is processed and then answered with a 500 |
| `502=P` | with probability P, a 502 from "DDoS protection" |
| `502burst=N:K` | after K requests, the next N requests all get a 502 |
| `html=P` | the request is processed, then answered 200 with an HTML page |
| `badjson=P` | the request is processed, then answered with malformed JSON |
| `shape=P` | the request is processed, then answered with JSON of the wrong shape |
| `truncate=P` | the request is processed, then the answer is cut off half way |
| `slow=P:S` | with probability P, the answer waits S seconds |
| `lose=K` | the ship named by the K-th ship action is lost: it answers 404 from then on |
| `lose=ACTION:K` | the same, counting only one action (`purchase`, `sell`, `navigate`, …) |
| `kill=ACTION:K` | the K-th ACTION is processed, then `on_kill` runs before the answer |
| `killbefore=ACTION:K` | `on_kill` runs before the K-th ACTION is processed |
| `on=ACTION` | inject the probabilistic faults above only into requests ending in ACTION |
| `times=N` | inject at most N of them |
| `seed=N` | seed of the random draws, for repeatable drills |

ACTION is the last part of the path (`purchase`, `sell`, `refuel`, `navigate`, `orbit`,
`dock`, `supply`, `deliver`; `ships` is buying a ship), prefixed with `get-` for reads
(`get-ships`, `get-market`, `get-agent`).
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field


class FaultSpecError(ValueError):
    """The fault plan could not be parsed."""


@dataclass
class FaultPlan:
    throttle: float = 0.0
    throttle_bare: float = 0.0
    error_before: float = 0.0
    error_after: float = 0.0
    bad_gateway: float = 0.0
    html: float = 0.0
    bad_json: float = 0.0
    bad_shape: float = 0.0
    truncate: float = 0.0
    burst_size: int = 0
    burst_after: int = 0
    slow: float = 0.0
    slow_seconds: float = 0.0
    lose_at: int = 0
    lose_action: str | None = None
    only_on: str | None = None
    times: int | None = None
    kills: tuple[tuple[str, str, int], ...] = ()  # (when, action, k): when is before/after
    seed: int = 0
    _rng: random.Random = field(init=False, repr=False, compare=False)
    _lock: threading.Lock = field(init=False, repr=False, compare=False,
                                  default_factory=threading.Lock)
    _requests: int = field(init=False, default=0, compare=False)
    _ship_actions: int = field(init=False, default=0, compare=False)
    _injected: int = field(init=False, default=0, compare=False)
    _actions: dict = field(init=False, default_factory=dict, compare=False)

    def __post_init__(self):
        self._rng = random.Random(self.seed)

    @classmethod
    def parse(cls, spec: str | None) -> FaultPlan:
        plan: dict = {"kills": []}
        for item in filter(None, (s.strip() for s in (spec or "").split(","))):
            name, _, value = item.partition("=")
            try:
                if name in PROBABILITIES:
                    plan[PROBABILITIES[name]] = _probability(value)
                elif name == "502burst":
                    size, _, after = value.partition(":")
                    plan["burst_size"], plan["burst_after"] = int(size), int(after or 0)
                elif name == "slow":
                    p, _, seconds = value.partition(":")
                    plan["slow"], plan["slow_seconds"] = _probability(p), float(seconds or 1)
                elif name == "lose":
                    action, _, count = value.rpartition(":")
                    plan["lose_at"], plan["lose_action"] = int(count), action or None
                elif name in ("kill", "killbefore"):
                    action, _, count = value.rpartition(":")
                    if not action or int(count) < 1:
                        raise ValueError("expected ACTION:K with K >= 1")
                    plan["kills"].append(("before" if name == "killbefore" else "after",
                                          action, int(count)))
                elif name == "seed":
                    plan["seed"] = int(value)
                elif name == "on":
                    plan["only_on"] = value
                elif name == "times":
                    plan["times"] = int(value)
                else:
                    raise FaultSpecError(f"unknown fault {name!r}")
            except ValueError as exc:
                raise FaultSpecError(f"bad fault item {item!r}: {exc}") from None
        plan["kills"] = tuple(plan["kills"])
        return cls(**plan)

    def draw(self, path: str = "") -> str | None:
        """The fault for the next request (a key of PROBABILITIES), or None."""
        with self._lock:
            self._requests += 1
            n = self._requests
            if self.burst_size and self.burst_after < n <= self.burst_after + self.burst_size:
                return "502"
            if self.only_on and not path.endswith(self.only_on):
                return None
            if self.times is not None and self._injected >= self.times:
                return None
            for name, attribute in PROBABILITIES.items():
                p = getattr(self, attribute)
                if p and self._rng.random() < p:
                    self._injected += 1
                    return name
            return None

    def count(self, action: str) -> int:
        """Count one request for ACTION; returns how many came so far."""
        with self._lock:
            self._actions[action] = self._actions.get(action, 0) + 1
            return self._actions[action]

    def kill_now(self, when: str, action: str, seen: int) -> bool:
        """Whether the drill's kill is aimed at this instant."""
        return any(k == (when, action, seen) for k in self.kills)

    def delay(self) -> float:
        with self._lock:
            return self.slow_seconds if self.slow and self._rng.random() < self.slow else 0.0

    def ship_to_lose(self, ship: str, action: str) -> str | None:
        """Counts ship actions; returns the ship to lose when the K-th one comes."""
        if not self.lose_at or self.lose_action not in (None, action):
            return None
        with self._lock:
            self._ship_actions += 1
            return ship if self._ship_actions == self.lose_at else None


PROBABILITIES = {"429": "throttle", "429bare": "throttle_bare", "500": "error_before",
                 "500after": "error_after", "502": "bad_gateway", "html": "html",
                 "badjson": "bad_json", "shape": "bad_shape", "truncate": "truncate"}
AFTER = {"500after", "html", "badjson", "shape", "truncate"}  # processed, then answered badly


def _probability(value: str) -> float:
    p = float(value)
    if not 0 <= p <= 1:
        raise ValueError("a probability is between 0 and 1")
    return p
