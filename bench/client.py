"""Client benchmark: requests/second against a rate-limited local server, CPU per request.

    python bench/client.py [--seconds 30] [--threads 4] [--requests 2000]

The server runs in a child process, so the CPU time measured here is the client's own.
"""

from __future__ import annotations

import argparse
import math
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from api.client import Client
from api.ratelimit import RateLimiter
from bench.common import machine, sim_process, table


def registered(url: str, limiter: RateLimiter, name: str) -> Client:
    anon = Client(url, token="", limiter=limiter)
    return anon.with_token(anon.register(name, "COSMIC", "bench").token)


def hammer(client: Client, threads: int, until: float | None = None,
           total: int | None = None) -> int:
    done = [0]
    lock = threading.Lock()

    def work():
        while True:
            with lock:
                if (total is not None and done[0] >= total) or \
                        (until is not None and time.monotonic() >= until):
                    return
                done[0] += 1
            client.agent()

    pool = [threading.Thread(target=work) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return done[0]


def main() -> None:
    args = argparse.ArgumentParser(description=__doc__)
    args.add_argument("--seconds", type=float, default=30.0)
    args.add_argument("--threads", type=int, default=4)
    args.add_argument("--requests", type=int, default=2000)
    opts = args.parse_args()
    rows = []

    with sim_process("--no-rate-limit") as url:
        client = registered(url, RateLimiter.unlimited(), "CPU")
        client.agent()  # warm the connection
        cpu0, wall0 = time.process_time(), time.monotonic()
        n = hammer(client, 1, total=opts.requests)
        cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
        rows.append(["no limit, 1 thread", n, f"{wall:.1f}", f"{n / wall:.0f}", "-",
                     f"{cpu / n * 1000:.2f}"])

    with sim_process("--rate-limit") as url:
        client = registered(url, RateLimiter(), "RATE")
        cpu0, start = time.process_time(), time.monotonic()
        n = hammer(client, opts.threads, until=start + opts.seconds)
        wall, cpu = time.monotonic() - start, time.process_time() - cpu0
        # the server's pools refill 1 s and 60 s after first use, so this is its ceiling
        limit = (2 * math.ceil(wall) + 30 * math.ceil(wall / 60) - 1) / wall
        throttled = client.calls["agent"] - n
        rows.append([f"real limits, {opts.threads} threads", n, f"{wall:.1f}",
                     f"{n / wall:.2f}", f"{limit:.2f} ({throttled} x 429)",
                     f"{cpu / n * 1000:.2f}"])

    print(machine())
    print(table(["run", "requests", "seconds", "req/s", "limit req/s", "CPU ms/request"],
                rows))


if __name__ == "__main__":
    main()
