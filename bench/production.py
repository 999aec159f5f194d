"""Production benchmark: makespan against a lower bound, API economy, and cost per unit.

    python bench/production.py [--targets IRON_ORE,CLOTHING,ADVANCED_CIRCUITRY]
                               [--fleets 1,2,4,8] [--seed 1] [--time-scale 100]
                               [--real-limits]

Each run is a fresh local server (fixed seed and time scale) and a fresh database. The
fleet is the starting command frigate plus light haulers bought at the shipyard; the
agent starts with 5,000,000 credits so that eight haulers can be bought (a benchmark
knob: real agents start with 175,000). Makespan is in game seconds (real seconds × the
time scale). The lower bound is computed from the same universe with everything known
up front: the critical path of flights (at the fleet's best speed, no refuelling, no
docking) and of production ticks, so the ratio also shows what surveying costs.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from actors.logs import configure
from api.client import Client
from api.ratelimit import RateLimiter
from bench.common import machine, table
from cli import RunOptions, start_production
from domain.enums import Acquisition, TradeType
from domain.markets import MarketSnapshot
from domain.navigation import distance, travel_seconds
from domain.plan import PlanNode, resolve
from sim.economy import BANDS
from sim.server import SimServer, build_game
from storage.db import open_database
from storage.files import default_supply_chain
from storage.repositories import Storage

ACTIONS = ("navigate", "dock", "orbit", "purchase", "sell", "refuel")


def lower_bound(plan: PlanNode, game, start: str, speed: int) -> float:
    """Game seconds no fleet can beat: flights at `speed` and production ticks only."""
    places = game.places
    moderate = BANDS[1][1]  # LIMITED's upper bound is where MODERATE starts

    def fly(a: str, b: str) -> float:
        return 0.0 if a == b else travel_seconds(distance(places[a], places[b]), speed)

    def production(node: PlanNode) -> float:
        stock = game.universe.markets[node.waypoint].goods[node.good]
        needed = max(0.0, moderate * stock.scale - stock.stock)
        economy = game.universe.markets[node.waypoint].economy
        rate = economy.production_rate(stock.activity) * stock.scale
        return max(0, math.ceil(needed / rate) - 1) * economy.tick_seconds

    def ready(node: PlanNode) -> float:
        return max(at(c, node.waypoint) for c in node.children) + production(node)

    def at(node: PlanNode, dest: str) -> float:
        if node.method is Acquisition.BUY:
            return fly(start, node.waypoint) + fly(node.waypoint, dest)
        return ready(node) + fly(node.waypoint, dest)

    return fly(start, plan.waypoint) if plan.method is Acquisition.BUY else ready(plan)


def minimum_actions(plan: PlanNode, lot: int, volumes: dict[str, int]) -> int:
    """Ship actions the plan cannot do without: per delivery two flights, two dockings,
    one orbit, and purchases and sales split by trade volume."""
    total = 0
    for node in plan.flatten():
        trades = math.ceil(lot / volumes.get(node.good, lot))
        keeps = node is plan
        total += trades * (1 if keeps else 2) + (2 if keeps else 5)
    return total


def run(target: str, haulers: int, seed: int, scale: float, real_limits: bool) -> dict:
    record: list = []
    game = build_game(seed=seed, time_scale=scale, starting_credits=5_000_000)
    server = SimServer(game, rate_limit=real_limits, on_exchange=record.append)
    url = server.start()
    limiter = RateLimiter() if real_limits else RateLimiter.unlimited()
    anon = Client(url, token="", limiter=limiter)
    reg = anon.register(f"BENCH{haulers}", "COSMIC", "bench")
    client = anon.with_token(reg.token)
    yard = game.universe.start_probe_at
    for _ in range(haulers - 1):
        client.purchase_ship("SHIP_LIGHT_HAULER", yard)
    now_markets = [MarketSnapshot.from_api(m.payload(True, {}))
                   for m in game.universe.markets.values()]
    chain = default_supply_chain()
    plan = resolve(target, chain, now_markets)
    outright = min((q.purchase_price for m in now_markets if m.sells(target)
                    and (q := m.quote(target))), default=None)
    bound = lower_bound(plan, game, reg.agent.headquarters, 36)
    volumes = {g: s.trade_volume for m in game.universe.markets.values()
               for g, s in m.goods.items() if s.type is not TradeType.IMPORT}
    before = len(record)
    storage = Storage(open_database(str(Path(tempfile.mkdtemp()) / "bench.db")))
    started = time.monotonic()
    code = start_production(client, storage, chain, target,
                            RunOptions(poll_initial=0.5, poll_settled=1.0, tick=0.2))
    real = time.monotonic() - started
    server.stop()
    factory = storage.factories.load(storage.factories.list()[-1].id)
    calls = Counter(x.spec_path.rsplit("/", 1)[-1] if "{shipSymbol}/" in x.spec_path
                    else x.spec_path for x in record[before:])
    entries = storage.ledger.entries(factory=factory.id, state="CONFIRMED")
    gross = sum(e.total for e in entries if e.kind != "SELL")
    revenue = sum(e.total for e in entries if e.kind == "SELL")
    return {"target": target, "haulers": haulers, "ok": code == 0, "makespan": real * scale,
            "bound": bound, "requests": sum(calls.values()), "calls": calls,
            "minimum": minimum_actions(plan, factory.lot, volumes), "units":
            factory.units_acquired, "gross": gross, "revenue": revenue,
            "net": factory.credits_spent, "outright": outright, "depth": plan.depth()}


def main() -> None:
    args = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    args.add_argument("--targets", default="IRON_ORE,CLOTHING,ADVANCED_CIRCUITRY")
    args.add_argument("--fleets", default="1,2,4,8")
    args.add_argument("--seed", type=int, default=1)
    args.add_argument("--time-scale", type=float, default=100.0)
    args.add_argument("--real-limits", action="store_true",
                      help="rate-limit the server and pace the client as the real game does")
    opts = args.parse_args()
    configure("json", "ERROR", stream=open("/dev/null", "w"))  # noqa: SIM115
    results = []
    for target in opts.targets.split(","):
        for haulers in (int(n) for n in opts.fleets.split(",")):
            result = run(target, haulers, opts.seed, opts.time_scale, opts.real_limits)
            results.append(result)
            print(f"  {target} x{haulers}: {'ok' if result['ok'] else 'FAILED'} in "
                  f"{result['makespan']:.0f} game s", file=sys.stderr)

    print(machine())
    print(f"seed {opts.seed}, time scale {opts.time_scale:g}, "
          f"{'real' if opts.real_limits else 'no'} rate limits\n")
    print("Makespan (game seconds)")
    print(table(["target", "depth", "haulers", "makespan", "lower bound", "ratio"], [
        [r["target"], r["depth"], r["haulers"], f"{r['makespan']:.0f}", f"{r['bound']:.0f}",
         f"{r['makespan'] / r['bound']:.2f}" if r["bound"] else "-"] for r in results]))
    print("\nAPI economy (requests)")
    print(table(["target", "haulers", "requests", "per unit", "ship actions", "minimum",
                 "market reads", "top endpoints"], [
        [r["target"], r["haulers"], r["requests"],
         f"{r['requests'] / r['units']:.1f}" if r["units"] else "-",
         sum(r["calls"][a] for a in ACTIONS), r["minimum"],
         r["calls"]["/systems/{systemSymbol}/waypoints/{waypointSymbol}/market"],
         ", ".join(f"{k.rsplit('/', 1)[-1]} {v}" for k, v in r["calls"].most_common(4))]
        for r in results]))
    print("\nCost (credits per unit of target)")
    print(table(["target", "haulers", "units", "gross/unit", "sales back", "net/unit",
                 "outright price"], [
        [r["target"], r["haulers"], r["units"],
         f"{r['gross'] / r['units']:,.0f}" if r["units"] else "-", f"{r['revenue']:,}",
         f"{r['net'] / r['units']:,.0f}" if r["units"] else "-",
         f"{r['outright']:,}" if r["outright"] else "not sold"] for r in results]))


if __name__ == "__main__":
    main()
