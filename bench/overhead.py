"""Overhead benchmark: the bot's own CPU time per API request and its peak memory.

    python bench/overhead.py [--ships 1,10,50] [--factories 1,10] [--time-scale 200]

Every configuration runs in a fresh child process (so peak memory is its own) against a
simulator in another process (so the CPU time measured is the bot's alone), without
rate limits. N ships means the command frigate plus N-1 light haulers; each of F
factories produces four units (so one hold fits ten) of a different good that can be
bought outright.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import ROOT, machine, sim_process, table

GOODS = ["IRON_ORE", "COPPER_ORE", "ALUMINUM_ORE", "QUARTZ_SAND", "SILICON_CRYSTALS",
         "ICE_WATER", "AMMONIA_ICE", "PRECIOUS_STONES", "HYDROCARBON", "LIQUID_HYDROGEN"]


def child(url: str, ships: int, factories: int) -> dict:
    """Run F factories with N ships in this process and measure it."""
    from actors.logs import configure
    from actors.service import Order, Service
    from actors.settings import Settings
    from api.client import Client
    from api.ratelimit import RateLimiter
    from storage.db import open_database
    from storage.files import default_supply_chain
    from storage.repositories import Storage

    configure("json", "ERROR", stream=open("/dev/null", "w"))  # noqa: SIM115
    anon = Client(url, token="", limiter=RateLimiter.unlimited())
    reg = anon.register(f"OVER{ships}X{factories}", "COSMIC", "bench")
    client = anon.with_token(reg.token)
    yard = client.ships()[1].nav.waypoint  # the probe starts at the shipyard
    for _ in range(ships - 1):
        client.purchase_ship("SHIP_LIGHT_HAULER", yard)
    storage = Storage(open_database(str(Path(tempfile.mkdtemp()) / "over.db")))
    service = Service(client, storage, default_supply_chain(),
                      Settings(poll_initial=0.5, poll_settled=1.0, tick=0.5))
    calls0 = client.calls
    cpu0, wall0 = time.process_time(), time.monotonic()
    runtime = service.runtime()
    ids = [service.create(runtime, Order(GOODS[i % len(GOODS)], lot=4), runtime.owner).id
           for i in range(factories)]
    outcome = service.run(runtime, ids)
    calls = client.calls - calls0
    requests = sum(calls.values())
    cpu = time.process_time() - cpu0
    return {"ok": outcome.finished, "requests": requests, "cpu_ms": cpu / requests * 1000,
            "wall": time.monotonic() - wall0, "market_reads": calls["market"],
            "waypoints": calls["waypoints"],
            "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    args = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    args.add_argument("--ships", default="1,10,50")
    args.add_argument("--factories", default="1,10")
    args.add_argument("--time-scale", type=float, default=200.0)
    args.add_argument("--child", nargs=3, metavar=("URL", "SHIPS", "FACTORIES"),
                      help=argparse.SUPPRESS)
    opts = args.parse_args()
    if opts.child:
        url, ships, factories = opts.child
        print(json.dumps(child(url, int(ships), int(factories))))
        return
    rows = []
    for ships in (int(n) for n in opts.ships.split(",")):
        for factories in (int(n) for n in opts.factories.split(",")):
            with sim_process("--no-rate-limit", "--time-scale", str(opts.time_scale),
                             "--starting-credits", "50000000") as url:
                out = subprocess.run([sys.executable, __file__, "--child", url, str(ships),
                                      str(factories)], cwd=ROOT, capture_output=True,
                                     text=True, timeout=1800)
            lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
            if not lines:
                raise SystemExit(f"run failed: {out.stderr[-2000:]}")
            r = json.loads(lines[-1])
            print(f"  {ships} ships, {factories} factories: {r}", file=sys.stderr)
            rows.append([ships, factories, "ok" if r["ok"] else "FAILED", r["requests"],
                         r["market_reads"],
                         f"{r['cpu_ms']:.2f}", f"{r['peak_mb']:.0f}", f"{r['wall']:.1f}"])
    print(machine())
    print(f"time scale {opts.time_scale:g}, no rate limits\n")
    print(table(["ships", "factories", "result", "requests", "market reads", "CPU ms/request",
                 "peak RSS MB", "wall s"], rows))


if __name__ == "__main__":
    main()
