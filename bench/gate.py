"""Jump-gate benchmark: the captured X1-AD75 system's gate supplied with what it requires.

    python bench/gate.py [--fleets 4,8] [--fab-mats 1600] [--circuitry 400]
                         [--time-scale 2000] [--economy gentle] [--log FILE]

Each run is a fresh local server on the real capture in ../shared/spacetraders-data/X1-AD75
(its waypoints, markets, first quotes and construction site) and a fresh database. The
fleet is the starting frigate and probe plus light haulers bought at the shipyard (the
agent starts with 10,000,000 credits so that they can be bought and the gate paid for).
Two factories run together on the one fleet, as `produce FAB_MATS --units N --deliver
construction` and the same for ADVANCED_CIRCUITRY would.

Figures: the makespan in game seconds until the site holds all it required; the requests;
credits per unit (what was spent on everything, net of inputs sold back, divided by the
units supplied) against buying every unit outright at the cheapest exporter's first
quote (which could not be done in practice: the price climbs as the seller drains); and
the bound set by the exporters' throughput. That bound takes the simulator's production
rate for each exporter of the good (its activity × the good's scale per production tick,
as if its inputs never ran short, every exporter at once), after the units its stock
holds above the buying threshold at the start; it ignores flight and feeding, so no run
can beat it. The bot does not know these constants: it observes.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from actors.logs import configure
from actors.service import Order, Service
from api.client import Client
from api.ratelimit import RateLimiter
from bench.common import ROOT, machine, table
from bench.production import outright, scaled
from domain.enums import SupplyLevel, TradeType
from domain.factory import Destination, FactoryStatus
from sim.economy import BANDS, ECONOMIES
from sim.server import SimServer, build_game
from storage.db import open_database
from storage.files import default_supply_chain
from storage.repositories import Storage

STARTING_CREDITS = 10_000_000
CAPTURE = ROOT.parent / "shared" / "spacetraders-data" / "X1-AD75"
# the bot buys while supply is MODERATE or more: above LIMITED's upper bound (× scale)
BUYABLE_ABOVE = dict(BANDS)[SupplyLevel.LIMITED]


def throughput_bound(game, good: str, units: int) -> float:
    """Game seconds the system's exporters of `good` need to make `units` at full pace."""
    rate = start = 0.0
    for market in game.universe.markets.values():
        stock = market.goods.get(good)
        if stock is None or stock.type is not TradeType.EXPORT:
            continue
        economy = market.economy
        rate += economy.production_rate(stock.activity) * stock.scale / economy.tick_seconds
        start += max(0.0, stock.stock - BUYABLE_ABOVE * stock.scale)
    return max(0.0, units - start) / rate if rate else float("inf")


def buy_haulers(client: Client, yard: str, count: int) -> None:
    """A ship must be at the shipyard to buy there: the frigate flies over first."""
    if count <= 0:
        return
    frigate = client.ships()[0]
    if frigate.nav.waypoint != yard:
        client.orbit(frigate.symbol)
        client.navigate(frigate.symbol, yard)
        while client.ship(frigate.symbol).nav.status == "IN_TRANSIT":
            time.sleep(0.05)
    for _ in range(count):
        client.purchase_ship("SHIP_LIGHT_HAULER", yard)


def run(haulers: int, opts) -> dict:
    game = build_game(universe_dir=CAPTURE, time_scale=opts.time_scale, economy=opts.economy,
                      starting_credits=STARTING_CREDITS)
    order = {"FAB_MATS": opts.fab_mats, "ADVANCED_CIRCUITRY": opts.circuitry}
    bounds = {g: throughput_bound(game, g, n) for g, n in order.items()}
    prices = {g: outright(game, g) for g in order}
    server = SimServer(game, rate_limit=False)
    url = server.start()
    anon = Client(url, token="", limiter=RateLimiter.unlimited())
    client = anon.with_token(anon.register(f"GATE{haulers}", "COSMIC", "bench").token)
    yard = next(y.waypoint for y in game.universe.shipyards.values()
                if "SHIP_LIGHT_HAULER" in y.prices)
    buy_haulers(client, yard, haulers - 1)
    storage = Storage(open_database(str(Path(tempfile.mkdtemp()) / "gate.db")))
    service = Service(client, storage, default_supply_chain(), scaled(opts.time_scale))
    calls0, started, wall = client.calls, game.clock.game_now(), datetime.now(UTC)
    runtime = service.runtime()
    ids = [service.create(runtime, Order(g, units=n, destination=Destination.parse(
        "construction")), runtime.owner).id for g, n in order.items() if n]
    outcome = service.run(runtime, ids)
    makespan = game.clock.game_now() - started
    calls = client.calls - calls0
    server.stop()
    site = next(iter(game.universe.constructions.values()))
    factories = [storage.factories.load(i) for i in ids]
    storage.close()
    supplied = {g: site.materials[g].fulfilled for g in order}
    net = sum(f.credits_spent for f in factories)
    # the site's own count, not the factories' word: a factory that completes short of
    # what the site needed is a failed run
    return {"haulers": haulers, "ok": outcome.finished and all(
        f.status is FactoryStatus.COMPLETED for f in factories) and all(
        supplied[g] >= n for g, n in order.items()), "makespan": makespan,
        "bound": max(bounds.values()), "requests": sum(calls.values()),
        "market reads": calls["market"], "supplied": supplied, "net": net,
        "outright": sum(prices[g] * n for g, n in order.items() if prices[g]),
        "units": sum(supplied.values()), "wall": (datetime.now(UTC) - wall).total_seconds()}


def main() -> None:
    args = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    args.add_argument("--fleets", default="4,8")
    args.add_argument("--fab-mats", type=int, default=1600)
    args.add_argument("--circuitry", type=int, default=400)
    args.add_argument("--time-scale", type=float, default=2000.0)
    args.add_argument("--economy", default="gentle", choices=list(ECONOMIES))
    args.add_argument("--log", help="write the bot's JSON log here")
    opts = args.parse_args()
    if not CAPTURE.is_dir():
        raise SystemExit(f"the X1-AD75 capture is not at {CAPTURE}")
    configure("json", "INFO" if opts.log else "ERROR",
              stream=open(opts.log or "/dev/null", "a"))  # noqa: SIM115
    rows = []
    for haulers in (int(n) for n in opts.fleets.split(",")):
        started = time.monotonic()
        r = run(haulers, opts)
        print(f"  {haulers} haulers: {'ok' if r['ok'] else 'FAILED'} in {r['makespan']:.0f} "
              f"game s, {time.monotonic() - started:.0f} s", file=sys.stderr)
        rows.append([r["haulers"], f"{r['makespan']:,.0f}" + ("" if r["ok"] else " FAILED"),
                     f"{r['bound']:,.0f}",
                     f"{r['makespan'] / r['bound']:.2f}" if r["bound"] else "-",
                     ", ".join(f"{n} {g}" for g, n in r["supplied"].items()),
                     r["requests"], r["market reads"],
                     f"{r['net'] / r['units']:,.0f}" if r["units"] else "-",
                     f"{r['outright'] / (opts.fab_mats + opts.circuitry):,.0f}"])
    print(machine())
    print(f"X1-AD75 capture, economy {opts.economy}, time scale {opts.time_scale:g}, no rate "
          f"limits; gate order {opts.fab_mats} FAB_MATS + {opts.circuitry} ADVANCED_CIRCUITRY\n")
    print(table(["haulers", "makespan", "throughput bound", "ratio", "supplied", "requests",
                 "market reads", "net credits/unit", "outright at start/unit"], rows))


if __name__ == "__main__":
    main()
