"""Production benchmark: makespan against the honest bound, requests against the minimum,
and cost per unit.

    python bench/production.py [--targets IRON_ORE,CLOTHING,ADVANCED_CIRCUITRY]
                               [--fleets 1,2,4,8] [--seed 1[,2,...]] [--time-scale 100]
                               [--economy gentle] [--real-limits] [--again]

Each run is a fresh local server (fixed seed, time scale and economy profile) and a fresh
database: the bot knows nothing of the system, as on a player's first run there. The fleet
is the starting command frigate and probe plus light haulers bought at the shipyard; the
agent starts with 5,000,000 credits so that eight haulers can be bought (a benchmark knob:
real agents start with 175,000). The order is one load of the target, kept in the hold.

Makespan is in game seconds, from the first request to the last. The bot's own cadences
(market polls, the actors' tick, back-offs, the blind-exporter look, the slack after a
landing) are divided by the time scale, so that they cost the game time they would cost
on the real server (the tick and the slack have a floor: 20 ms and 2 ms).

The bound (bench/bound.py says what it assumes) is the best plan over every seller and
exporter for this fleet, from where its ships start; it is given with the survey (every
seller of a good read before the good is decided, as the bot must on a first run) and
without (quotes known up front). The minimum requests are those the game cannot do without
for the bound's plan.

With `--again` each case runs a second time from the same start (a fresh server with
the same seed and economy), on a fresh database holding only what the first run learnt of
the economy (the answer delays and the rounds each answer needed), as the next order in
a system would know it: what the learning is worth, apart from what the markets kept.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from actors.logs import configure
from actors.service import Order, Service
from actors.settings import Settings
from api.client import PAGE_LIMIT, Client
from api.ratelimit import RateLimiter
from bench.bound import Bounds
from bench.common import machine, table
from domain.enums import TradeType
from domain.factory import FactoryStatus, TaskPurpose
from domain.scheduling import ShipView
from sim.server import SimServer, build_game
from storage.db import open_database
from storage.files import default_supply_chain
from storage.repositories import Storage, from_db

ACTIONS = ("navigate", "dock", "orbit", "purchase", "sell", "refuel")
MARKET = "/systems/{systemSymbol}/waypoints/{waypointSymbol}/market"


def scaled(scale: float) -> Settings:
    """The bot's real-time cadences, as game time at this time scale."""
    d = Settings()
    return Settings(poll_initial=d.poll_initial / scale, poll_settled=d.poll_settled / scale,
                    tick=max(0.02, d.tick / scale), recheck=d.recheck / scale,
                    blind_check_after=d.blind_check_after / scale,
                    answer_wait=d.answer_wait / scale,
                    not_ready_backoff=d.not_ready_backoff / scale,
                    retry_backoff=d.retry_backoff / scale, warn_after=d.warn_after / scale,
                    quote_fresh_for=d.quote_fresh_for / scale,
                    arrival_slack=max(0.002, d.arrival_slack / scale))


def outright(game, good: str) -> int | None:
    """The cheapest seller's purchase price at the start (None: nobody sells it)."""
    return min((s.purchase_price for m in game.universe.markets.values()
                if (s := m.goods.get(good)) and s.type is not TradeType.IMPORT), default=None)


def views(client: Client) -> list[ShipView]:
    return [ShipView(s.symbol, s.nav.waypoint, s.speed, s.fuel.current, s.fuel.capacity,
                     s.cargo.capacity, s.cargo.capacity - s.cargo.units)
            for s in client.ships()]


def pages(n: int) -> int:
    return max(1, -(-n // PAGE_LIMIT))


def start(haulers: int, seed: int, opts, record: list):
    """A fresh server for the seed and economy, and an agent with `haulers` haulers."""
    game = build_game(seed=seed, time_scale=opts.time_scale, economy=opts.economy,
                      starting_credits=5_000_000)
    server = SimServer(game, rate_limit=opts.real_limits, on_exchange=record.append)
    url = server.start()
    limiter = RateLimiter() if opts.real_limits else RateLimiter.unlimited()
    anon = Client(url, token="", limiter=limiter)
    reg = anon.register(f"BENCH{haulers}", "COSMIC", "bench")
    client = anon.with_token(reg.token)
    for _ in range(haulers - 1):
        client.purchase_ship("SHIP_LIGHT_HAULER", game.universe.start_probe_at)
    return game, server, client


def run(target: str, haulers: int, seed: int, opts) -> dict:
    record: list = []
    game, server, client = start(haulers, seed, opts, record)
    fleet = views(client)
    lot = min(s.cargo_capacity for s in fleet if s.cargo_capacity)
    chain = default_supply_chain()
    bounds = Bounds(game, chain, fleet, lot)
    surveyed, known = bounds.best(target, survey=True), bounds.best(target, survey=False)
    minimum = bounds.minimum_requests(surveyed.plan, pages(len(fleet)),
                                      pages(len(game.places)))
    cheapest = outright(game, target)

    storage = Storage(open_database(str(Path(tempfile.mkdtemp()) / "bench.db")))
    before = len(record)
    factory, outcome, product, makespan = order(client, storage, chain, game, target, lot,
                                                opts)
    server.stop()
    calls = Counter(x.spec_path.rsplit("/", 1)[-1] if "{shipSymbol}/" in x.spec_path
                    else x.spec_path for x in record[before:])
    entries = storage.ledger.entries(factory=factory.id, state="CONFIRMED")
    learnt = storage.db.execute_sql(
        "SELECT waypoint, good, landed_at, seconds, rounds_least, rounds_most "
        "FROM answer_delay ORDER BY id").fetchall()
    storage.close()
    again = None
    if opts.again:
        game, server, client = start(haulers, seed, opts, [])
        storage = Storage(open_database(str(Path(tempfile.mkdtemp()) / "again.db")))
        for waypoint, good, landed_at, seconds, least, most in learnt:
            storage.markets.record_answer(waypoint, good, from_db(landed_at), seconds,
                                          None if least is None else (least, most))
        second, done, seconds, _ = order(client, storage, chain, game, target, lot, opts)
        again = (seconds, second.status is FactoryStatus.COMPLETED and done.finished)
        server.stop()
        storage.close()
    return {"target": target, "haulers": haulers, "seed": seed, "again": again,
            "outcome": "ok" if outcome.finished else (outcome.error or "stopped"),
            "ok": factory.status is FactoryStatus.COMPLETED, "makespan": product, "ended": makespan,
            "bound": surveyed.seconds, "known": known.seconds, "requests": sum(calls.values()),
            "calls": calls, "minimum": minimum, "units": factory.units_acquired,
            "gross": sum(e.total for e in entries if e.kind not in ("SELL", "REFUEL")),
            "fuel": sum(e.total for e in entries if e.kind == "REFUEL"),
            "revenue": sum(e.total for e in entries if e.kind == "SELL"),
            "net": factory.credits_spent, "outright": cheapest,
            "depth": depth(surveyed.plan), "plan": surveyed.plan}


def order(client: Client, storage: Storage, chain, game, target: str, lot: int, opts):
    """Run an order of a load of `target`: the factory, its outcome, game seconds until
    the product was in the hold and until the factory ended."""
    started, wall = game.clock.game_now(), datetime.now(UTC)
    service = Service(client, storage, chain, scaled(opts.time_scale))
    runtime = service.runtime()
    factory = service.create(runtime, Order(target, lot=lot), runtime.owner)
    outcome = service.run(runtime, [factory.id])
    ended = game.clock.game_now() - started
    factory = storage.factories.load(factory.id)
    outputs = [t.finished_at for t in factory.tasks.values()
               if t.purpose is TaskPurpose.OUTPUT and t.finished_at]
    product = (max(outputs) - wall).total_seconds() * opts.time_scale if outputs else ended
    return factory, outcome, product, ended


def depth(step) -> int:
    """Levels of made goods in the best plan (a good bought outright: 0)."""
    if step is None or not step.made:
        return 0
    return 1 + max((depth(c) for c in step.children), default=0)


def report(results: list[dict], opts) -> str:
    several = len({r["seed"] for r in results}) > 1
    head = ["seed", "target"] if several else ["target"]

    def who(r: dict) -> list:
        return [r["seed"], r["target"]] if several else [r["target"]]

    out = [machine(), f"seed {opts.seed}, economy {opts.economy}, time scale "
           f"{opts.time_scale:g}, {'real' if opts.real_limits else 'no'} rate limits\n",
           "Makespan (game seconds until the product is in the hold; the factory ends once "
           "the inputs already bought are delivered)",
           table([*head, "depth", "haulers", "makespan", "ended", "bound (survey)", "ratio",
                  "bound (quotes known)", "ratio"], [
               [*who(r), r["depth"], r["haulers"],
                f"{r['makespan']:.0f}" + ("" if r["ok"] else " FAILED"), f"{r['ended']:.0f}",
                f"{r['bound']:.0f}", f"{r['makespan'] / r['bound']:.2f}",
                f"{r['known']:.0f}", f"{r['makespan'] / r['known']:.2f}"]
               for r in results]),
           "\nAPI economy (requests)",
           table([*head, "haulers", "requests", "minimum", "ratio", "ship actions",
                  "minimum", "market reads", "top endpoints"], [
               [*who(r), r["haulers"], r["requests"], r["minimum"]["total"],
                f"{r['requests'] / r['minimum']['total']:.2f}",
                sum(r["calls"][a] for a in ACTIONS), r["minimum"]["ship actions"],
                r["calls"][MARKET],
                ", ".join(f"{k.rsplit('/', 1)[-1]} {v}"
                          for k, v in r["calls"].most_common(4))]
               for r in results]),
           "\nCost (credits per unit of target)",
           table([*head, "haulers", "units", "bought/unit", "fuel", "sales back",
                  "net/unit", "outright price"], [
               [*who(r), r["haulers"], r["units"],
                f"{r['gross'] / r['units']:,.0f}" if r["units"] else "-", f"{r['fuel']:,}",
                f"{r['revenue']:,}", f"{r['net'] / r['units']:,.0f}" if r["units"] else "-",
                f"{r['outright']:,}" if r["outright"] else "not sold"] for r in results])]
    if opts.again:
        out += ["\nThe same start again, knowing what the first run learnt of the economy "
                "(answer delays, rounds per answer)",
                table([*head, "haulers", "makespan", "again", "change"],
                      [[*who(r), r["haulers"], f"{r['makespan']:.0f}",
                        f"{r['again'][0]:.0f}" + ("" if r["again"][1] else " FAILED"),
                        f"{r['again'][0] / r['makespan'] - 1:+.0%}"] for r in results])]
    return "\n".join(out)


def main() -> None:
    args = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    args.add_argument("--targets", default="IRON_ORE,CLOTHING,ADVANCED_CIRCUITRY")
    args.add_argument("--fleets", default="1,2,4,8")
    args.add_argument("--seed", default="1", help="the generated system's seed; several, "
                      "comma-separated, for systems the bot was not tuned on")
    args.add_argument("--time-scale", type=float, default=100.0)
    args.add_argument("--economy", default="gentle")
    args.add_argument("--real-limits", action="store_true",
                      help="rate-limit the server and pace the client as the real game does "
                      "(the limits are in real seconds: game time is then compressed)")
    args.add_argument("--log", help="write the bot's JSON log here")
    args.add_argument("--again", action="store_true",
                      help="run each case once more from the same start, knowing what the "
                      "first run learnt")
    opts = args.parse_args()
    configure("json", "INFO" if opts.log else "ERROR",
              stream=open(opts.log or "/dev/null", "a"))  # noqa: SIM115
    results = []
    seeds = [int(n) for n in opts.seed.split(",")]
    for seed in seeds:
        for target in opts.targets.split(","):
            for haulers in (int(n) for n in opts.fleets.split(",")):
                started = time.monotonic()
                r = run(target, haulers, seed, opts)
                results.append(r)
                print(f"  seed {seed} {target} x{haulers}: {r['outcome']} in "
                      f"{r['makespan']:.0f} game s "
                      f"(bound {r['bound']:.0f}, {r['makespan'] / r['bound']:.2f} x), "
                      f"{r['requests']} requests (minimum {r['minimum']['total']}), "
                      f"{time.monotonic() - started:.0f} s", file=sys.stderr)
    print(report(results, opts))


if __name__ == "__main__":
    main()
