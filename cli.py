"""The `goods-factory` command line: options, commands, and the foreground run."""

from __future__ import annotations

import json
import math
import os
import signal
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
import structlog

from actors.coordinator import Settings, read_system
from actors.logs import add_secret, configure
from actors.runtime import Runtime, new_owner, owner_alive
from api.client import Client
from api.errors import ApiError, OutcomeUnknown
from api.ratelimit import RateLimiter
from domain.enums import SupplyLevel
from domain.errors import DomainError, NeedsMarketData, UnknownGoodError
from domain.factory import Factory, FactoryStatus
from domain.markets import system_of
from domain.navigation import Place
from domain.plan import render_tree, resolve
from domain.report import outcome_line, render_status, status_dict
from domain.supply_chain import SupplyChain
from sim.economy import DEFAULT_ECONOMY, ECONOMIES
from sim.faults import FaultPlan
from sim.server import SimServer, build_game
from storage.db import DatabaseError, describe, open_database, resolve_url
from storage.files import DataFileError, known_goods, load_markets, load_places, load_supply_chain
from storage.repositories import Storage

USER_ERRORS: tuple[type[Exception], ...] = (DomainError, DataFileError, DatabaseError, ApiError)
RATE_LIMIT_ENV = "GOODS_FACTORY_RATE_LIMIT"
EXIT_INTERRUPTED = 130
LEASE = timedelta(seconds=60)  # a runner silent for longer has died or hung
log = structlog.get_logger("cli")


class _Cli(click.Group):
    """Turns the errors a player can fix into one line on stderr and a non-zero exit."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except USER_ERRORS as exc:
            raise click.ClickException(str(exc)) from exc


def _supply_level(_ctx, _param, value: str) -> SupplyLevel:
    try:
        return SupplyLevel.parse(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@dataclass
class Context:
    base_url: str | None
    token: str | None
    db: str | None
    supply_chain_path: str | None
    log_format: str | None
    log_level: str

    def chain(self) -> SupplyChain:
        return load_supply_chain(self.supply_chain_path)

    def storage(self) -> Storage:
        return Storage(open_database(resolve_url(self.db)))

    def client(self) -> Client:
        if not self.token:
            raise click.ClickException("no token: pass --token or set SPACETRADERS_TOKEN "
                                       "(goods-factory register creates an agent)")
        return Client(self.base_url, self.token, limiter=limiter_from_env())

    def logs(self) -> None:
        configure(self.log_format, self.log_level)


@click.group(cls=_Cli, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--base-url", envvar="SPACETRADERS_BASE_URL",
              help="API root [env SPACETRADERS_BASE_URL; default the real server]")
@click.option("--token", envvar="SPACETRADERS_TOKEN", help="agent token [env SPACETRADERS_TOKEN]")
@click.option("--db", envvar="GOODS_FACTORY_DB",
              help="SQLite path or postgresql:// URL [env GOODS_FACTORY_DB; default "
                   "~/.local/share/goods-factory/goods-factory.db]")
@click.option("--supply-chain", "supply_chain_path", envvar="GOODS_SUPPLY_CHAIN_PATH",
              type=click.Path(dir_okay=False), help="exportToImportMap JSON instead of the "
              "embedded copy [env GOODS_SUPPLY_CHAIN_PATH]")
@click.option("--log-format", type=click.Choice(["json", "console"]),
              help="log lines as JSON (default when not a terminal) or for people")
@click.option("--log-level", default="INFO", show_default=True,
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False))
@click.pass_context
def cli(ctx: click.Context, base_url, token, db, supply_chain_path, log_format, log_level):
    """Produce any trade good in SpaceTraders with a fleet of ships."""
    add_secret(token)
    ctx.obj = Context(base_url, token, db, supply_chain_path, log_format, log_level)


# --- planning ---------------------------------------------------------------------------


@cli.command()
@click.argument("target")
@click.option("--markets", "markets_path", type=click.Path(dir_okay=False),
              help="plan offline from captured Market payloads (a JSON list) instead of the "
                   "markets stored by earlier runs")
@click.option("--waypoints", "waypoints_path", type=click.Path(dir_okay=False),
              help="waypoint positions, to break ties by distance (with --markets)")
@click.option("--from", "origin", metavar="WAYPOINT", help="where distances are measured from")
@click.option("--system", help="system to plan in (without --markets; default: the HQ's)")
@click.option("--min-supply", default="MODERATE", callback=_supply_level,
              help="buy where a seller has at least this supply [MODERATE]")
@click.option("--json", "as_json", is_flag=True, help="print the tree as JSON")
@click.pass_obj
def plan(obj: Context, target, markets_path, waypoints_path, origin, system, min_supply,
         as_json):
    """Show how TARGET would be produced."""
    chain = obj.chain()
    if markets_path:
        markets = load_markets(markets_path)
        places: dict[str, Place] | None = None
        if waypoints_path:
            places = load_places(waypoints_path, markets)
    else:
        storage = obj.storage()
        system = system or _home_system(obj)
        markets = storage.markets.snapshots(system)
        places = storage.waypoints.places(system)
        if not markets:
            raise click.ClickException(f"no markets of {system} are stored yet: run produce, "
                                       "or `markets --refresh`, or plan with --markets FILE")
    if origin and (not places or origin not in places):
        raise click.BadParameter(f"{origin} is not a known waypoint", param_hint="--from")
    try:
        tree = resolve(target.upper(), chain, markets, min_supply=min_supply,
                       origin=places[origin] if origin else None, places=places)
    except NeedsMarketData as need:
        raise click.ClickException(f"{need}; produce reads them with its ships") from None
    if as_json:
        click.echo(json.dumps(tree.to_dict(), indent=2))
    else:
        click.echo(render_tree(tree))
        fabricated = sum(1 for n in tree.flatten() if not n.is_leaf)
        click.echo(f"\n{len(tree.flatten())} nodes ({fabricated} FABRICATE), depth "
                   f"{tree.depth()}; raw materials: {', '.join(tree.raw_materials())}")


def _home_system(obj: Context) -> str:
    return system_of(obj.client().agent().headquarters)


def limiter_from_env() -> RateLimiter:
    """The real server's limits, unless GOODS_FACTORY_RATE_LIMIT says otherwise.

    For local servers only: `none`, or `PER_SECOND,BURST[,WINDOW_SECONDS]`.
    """
    raw = os.environ.get(RATE_LIMIT_ENV, "").strip().lower()
    if not raw:
        return RateLimiter()
    if raw == "none":
        return RateLimiter.unlimited()
    try:
        parts = [float(p) for p in raw.split(",")]
        per_second, burst = int(parts[0]), int(parts[1])
        window = parts[2] if len(parts) > 2 else 60.0
    except (ValueError, IndexError):
        raise click.ClickException(f"{RATE_LIMIT_ENV} must be 'none' or "
                                   f"'PER_SECOND,BURST[,WINDOW]', not {raw!r}") from None
    return RateLimiter(per_second, burst, window)


# --- production -------------------------------------------------------------------------


@dataclass(frozen=True)
class RunOptions:
    system: str | None = None
    ships: tuple[str, ...] | None = None
    max_ships: int | None = None
    units: int | None = None
    lot: int | None = None
    min_supply: SupplyLevel = SupplyLevel.MODERATE
    reserve: int = 0
    ceiling_factor: float | None = 1.5
    poll_initial: float = 30.0
    poll_settled: float = 60.0
    warn_after: float = 1200.0
    tick: float = 0.5


def _env_seconds(name: str, default: float) -> float:
    raw = os.environ.get(name)
    try:
        return float(raw) if raw else default
    except ValueError:
        raise click.ClickException(f"{name} must be a number of seconds, not {raw!r}") from None


def _runtime(client: Client, storage: Storage, chain: SupplyChain, opts: RunOptions) -> Runtime:
    agent = client.agent()
    storage.ledger.record_balance(agent.symbol, agent.credits, datetime.now(UTC))
    settings = Settings(min_supply=opts.min_supply, reserve=opts.reserve,
                        ceiling_factor=opts.ceiling_factor, max_ships=opts.max_ships,
                        warn_after=opts.warn_after, blind_check_after=opts.poll_settled)
    return Runtime(client=client, storage=storage, chain=chain, agent=agent, settings=settings,
                   ships=set(opts.ships) if opts.ships else None,
                   poll_initial=opts.poll_initial, poll_settled=opts.poll_settled,
                   tick=opts.tick)


def _run(runtime: Runtime, storage: Storage, ids: list[str], progress=None) -> int:
    """Run the factories in the foreground until they end or a signal stops them."""
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def stop(signum, _frame):
        log.warning("shutdown.requested", signal=signal.Signals(signum).name)
        runtime.request_stop()

    if threading.current_thread() is threading.main_thread():
        for sig in previous:
            signal.signal(sig, stop)
    try:
        for factory_id in ids:
            runtime.start_factory(factory_id)
        finished = runtime.wait(on_idle=progress)
    finally:
        runtime.shutdown()
        if threading.current_thread() is threading.main_thread():
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    if not finished:
        click.echo("interrupted: the factories can be continued with `goods-factory resume`",
                   err=True)
        return EXIT_INTERRUPTED
    code = 0
    for factory_id in ids:
        factory = storage.factories.load(factory_id)
        click.echo(outcome_line(factory))
        if factory.status is not FactoryStatus.COMPLETED:
            code = 1
    return code


def create_factory(runtime: Runtime, storage: Storage, chain: SupplyChain, target: str,
                   opts: RunOptions) -> Factory:
    """Check that TARGET can be worked on with the fleet at hand, and record the factory."""
    target = target.upper()
    if target not in known_goods() | chain.goods:
        raise UnknownGoodError(f"unknown good {target}: it is not a trade good of the game")
    if opts.ships:
        missing = sorted(set(opts.ships) - {s.symbol for s in runtime.fleet.all()})
        if missing:
            raise click.ClickException(f"no such ship: {', '.join(missing)}")
    haulers = [s for s in runtime.idle_haulers() if s.cargo_free > 0]
    if not haulers:
        raise click.ClickException("no idle ships: every hauler of the agent is working for "
                                   "another factory or has a full hold (see `goods-factory "
                                   "list`)")
    system = opts.system or system_of(runtime.agent.headquarters)
    lot = opts.lot or min(s.cargo_capacity for s in haulers)
    factory = Factory(id=f"f-{uuid.uuid4().hex[:8]}", target=target, system=system, plan=None,
                      lot=lot, units_wanted=opts.units, min_supply=opts.min_supply,
                      created_at=datetime.now(UTC))
    storage.factories.create(factory, runtime.agent.symbol, runtime.owner, factory.created_at)
    click.echo(f"factory {factory.id}: producing {target} in {system} with {len(haulers)} "
               f"haulers (lot {lot})", err=True)
    return factory


def start_production(client: Client, storage: Storage, chain: SupplyChain, target: str,
                     opts: RunOptions, progress_every: float | None = None) -> int:
    """Create a factory for `target` and run it; the exit code of `produce`."""
    runtime = _runtime(client, storage, chain, opts)
    try:
        runtime.discover()
        factory = create_factory(runtime, storage, chain, target, opts)
    except BaseException:
        runtime.shutdown()
        raise
    return _run(runtime, storage, [factory.id], _progress(storage, [factory.id],
                                                           progress_every))


def _progress(storage: Storage, ids: list[str], every: float | None):
    """Print the status trees every `every` seconds, when they changed."""
    if not every:
        return None
    state = {"last": 0.0, "text": ""}

    def show():
        if time.monotonic() - state["last"] < every:
            return
        state["last"] = time.monotonic()
        text = "\n\n".join(render_status(storage.factories.load(i), datetime.now(UTC))
                            for i in ids)
        if text != state["text"]:
            state["text"] = text
            click.echo("\n" + text + "\n")

    return show


@cli.command()
@click.argument("target")
@click.option("--system", help="system to produce in [default: the HQ's]")
@click.option("--ships", help="use only these haulers (comma-separated symbols)")
@click.option("--max-ships", type=click.IntRange(min=1), help="at most N haulers at once")
@click.option("--units", type=click.IntRange(min=1),
              help="keep cycling until N units are held [default: one load of whatever is "
                   "available]")
@click.option("--lot", type=click.IntRange(min=1),
              help="units of each input per delivery [default: smallest hauler's hold]")
@click.option("--min-supply", default="MODERATE", callback=_supply_level,
              help="buy where supply is at least this; else make it [MODERATE]")
@click.option("--reserve", default=0, show_default=True, type=click.IntRange(min=0),
              help="credits never to spend")
@click.option("--max-price-factor", default="1.5", show_default=True,
              help="never pay more than this × the median price seen ('none': no cap)")
@click.option("--progress", "progress_every", type=float,
              help="print the status tree every N seconds")
@click.pass_obj
def produce(obj: Context, target, system, ships, max_ships, units, lot, min_supply, reserve,
            max_price_factor, progress_every):
    """Produce TARGET in the foreground until done (exit 0) or failed (exit 1)."""
    obj.logs()
    opts = RunOptions(system=system, ships=tuple(ships.split(",")) if ships else None,
                      max_ships=max_ships, units=units, lot=lot, min_supply=min_supply,
                      reserve=reserve, ceiling_factor=_factor(max_price_factor),
                      poll_initial=_env_seconds("GOODS_POLL_INTERVAL_INITIAL", 30.0),
                      poll_settled=_env_seconds("GOODS_POLL_INTERVAL_SETTLED", 60.0))
    storage = obj.storage()
    code = start_production(obj.client(), storage, obj.chain(), target, opts, progress_every)
    sys.exit(code)


def _factor(raw: str) -> float | None:
    if raw.lower() == "none":
        return None
    try:
        value = float(raw)
    except ValueError:
        raise click.BadParameter(f"{raw!r} is not a number or 'none'",
                                 param_hint="--max-price-factor") from None
    if not math.isfinite(value) or value <= 0:
        raise click.BadParameter(f"must be a positive number or 'none', not {raw!r}",
                                 param_hint="--max-price-factor")
    return value


@cli.command()
@click.option("--progress", "progress_every", type=float,
              help="print the status trees every N seconds")
@click.pass_obj
def resume(obj: Context, progress_every):
    """Continue the factories a crash or a signal interrupted, re-reading ship state."""
    obj.logs()
    storage = obj.storage()
    client = obj.client()
    opts = RunOptions(poll_initial=_env_seconds("GOODS_POLL_INTERVAL_INITIAL", 30.0),
                      poll_settled=_env_seconds("GOODS_POLL_INTERVAL_SETTLED", 60.0))
    runtime = _runtime(client, storage, obj.chain(), opts)
    now = datetime.now(UTC)
    try:
        taken = []
        for lease in storage.factories.orphans(now, LEASE, owner_alive,
                                               agent=runtime.agent.symbol):
            if storage.factories.take_over(lease, runtime.owner, now):
                taken.append(lease.factory)
            else:
                held = storage.factories.lease(lease.factory)
                log.info("factory.taken_elsewhere", factory=lease.factory,
                         owner=held.owner if held else None)
        if not taken:
            runtime.shutdown()
            click.echo("nothing to resume")
            return
        runtime.discover()
    except BaseException:
        runtime.shutdown()
        raise
    click.echo(f"resuming {', '.join(taken)}", err=True)
    sys.exit(_run(runtime, storage, taken, _progress(storage, taken, progress_every)))


# --- looking ----------------------------------------------------------------------------


@cli.command()
@click.argument("factory_id", required=False)
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def status(obj: Context, factory_id, as_json):
    """The factory's tree with each node's state, ship, units, cost and wait (default: the
    newest factory)."""
    storage = obj.storage()
    if factory_id is None:
        summaries = storage.factories.list()
        if not summaries:
            raise click.ClickException("no factories yet")
        factory_id = summaries[-1].id
    try:
        factory = storage.factories.load(factory_id)
    except KeyError:
        raise click.ClickException(f"no factory {factory_id}") from None
    now = datetime.now(UTC)
    if as_json:
        click.echo(json.dumps(status_dict(factory, now), indent=2))
    else:
        click.echo(render_status(factory, now))


@cli.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def list_(obj: Context, as_json):
    """All factories, oldest first."""
    rows = obj.storage().factories.list()
    if as_json:
        click.echo(json.dumps([{
            "id": r.id, "agent": r.agent, "target": r.target, "system": r.system,
            "status": r.status.value, "units_wanted": r.units_wanted,
            "units_acquired": r.units_acquired, "credits_spent": r.credits_spent,
            "created_at": r.created_at.isoformat(), "error": r.error} for r in rows], indent=2))
        return
    if not rows:
        click.echo("no factories yet")
        return
    click.echo(f"{'ID':<12} {'TARGET':<22} {'STATUS':<10} {'UNITS':>7} {'CREDITS':>12}  CREATED")
    for r in rows:
        units = f"{r.units_acquired}/{r.units_wanted}" if r.units_wanted else str(
            r.units_acquired)
        click.echo(f"{r.id:<12} {r.target:<22} {r.status.value:<10} {units:>7} "
                   f"{r.credits_spent:>12,}  {r.created_at:%Y-%m-%d %H:%M}")


@cli.command()
@click.argument("factory_id")
@click.pass_obj
def stop(obj: Context, factory_id):
    """Stop a factory for good: its runner stops within seconds, ships are freed."""
    storage = obj.storage()
    summary = storage.factories.summary(factory_id)
    if summary is None:
        raise click.ClickException(f"no factory {factory_id}")
    if summary.status.finished:
        raise click.ClickException(f"factory {factory_id} is already {summary.status.value}")
    now = datetime.now(UTC)
    orphan = next((lease for lease in storage.factories.orphans(now, LEASE, owner_alive)
                   if lease.factory == factory_id), None)
    me = new_owner()
    if orphan is None or not storage.factories.take_over(orphan, me, now):
        storage.factories.request_stop(factory_id)
        click.echo(f"stop requested: the process running {factory_id} will stop it")
        return
    factory = storage.factories.load(factory_id)
    factory.stop(now)
    storage.factories.save(factory, factory.tasks.values(), owner=me)
    storage.assignments.release_factory(factory_id)
    storage.factories.release(factory_id, me)
    click.echo(f"factory {factory_id} stopped")


@cli.command()
@click.option("--system", help="[default: the HQ's]")
@click.option("--good", help="only this good")
@click.option("--refresh", is_flag=True, help="read every market of the system from the API")
@click.pass_obj
def markets(obj: Context, system, good, refresh):
    """What is known of the system's markets (quotes need a ship present)."""
    storage = obj.storage()
    if refresh or not system:
        client = obj.client()
        system = system or system_of(client.agent().headquarters)
    if refresh:
        read_system(client, storage, system, again=True)
    snapshots = storage.markets.snapshots(system)
    if not snapshots:
        raise click.ClickException(f"nothing stored for {system}: use --refresh")
    for m in snapshots:
        goods = sorted(g for g in m.exports | m.imports | m.exchange if not good or g == good)
        if not goods:
            continue
        seen = f"seen {m.observed_at:%Y-%m-%d %H:%M}" if m.observed_at else "no quotes"
        click.echo(f"{m.waypoint} ({seen})")
        for g in goods:
            role = "export" if g in m.exports else "import" if g in m.imports else "exchange"
            q = m.quote(g)
            quote = (f"{q.supply.name:<9} {(q.activity.name if q.activity else ''):<10} "
                     f"buy {q.purchase_price:>7,}  sell {q.sell_price:>7,}  volume "
                     f"{q.trade_volume}") if q else ""
            click.echo(f"  {g:<28} {role:<9} {quote}")


@cli.command()
@click.argument("symbol")
@click.option("--faction", default="COSMIC", show_default=True)
@click.option("--account-token", envvar="SPACETRADERS_ACCOUNT_TOKEN", required=True,
              help="from my.spacetraders.io [env SPACETRADERS_ACCOUNT_TOKEN]")
@click.pass_obj
def register(obj: Context, symbol, faction, account_token):
    """Register a new agent and print its token (keep it secret)."""
    add_secret(account_token)
    client = Client(obj.base_url, token="")
    reg = client.register(symbol.upper(), faction.upper(), account_token)
    click.echo(f"agent {reg.agent.symbol} registered at {reg.agent.headquarters} with "
               f"{reg.agent.credits:,} credits and {len(reg.ships)} ships", err=True)
    click.echo(reg.token)


# --- the demo and the simulator ---------------------------------------------------------


@cli.command()
@click.option("--seed", default=1, show_default=True, type=int)
@click.option("--time-scale", default=40.0, show_default=True, type=float)
@click.option("--target", help="good to produce [default: the universe's depth-2 good]")
@click.option("--units", type=click.IntRange(min=1), help="units to hold at the end")
@click.option("--shuttles", default=1, show_default=True, type=click.IntRange(min=0),
              help="light shuttles to buy before producing")
@click.option("--rate-limit/--no-rate-limit", default=True, show_default=True,
              help="run the simulator (and pace the client) at the real rate limits")
@click.pass_obj
def demo(obj: Context, seed, time_scale, target, units, shuttles, rate_limit):
    """Start the simulator in-process and produce a good end to end, with live progress."""
    obj.logs()
    game = build_game(seed=seed, time_scale=time_scale)
    server = SimServer(game, rate_limit=rate_limit)
    url = server.start()
    universe = game.universe
    target = (target or universe.showcase.get("depth2") or "IRON_ORE").upper()
    workdir = Path(tempfile.mkdtemp(prefix="goods-factory-demo-"))
    db = obj.db or str(workdir / "demo.db")
    try:
        limiter = RateLimiter() if rate_limit else RateLimiter.unlimited()
        anon = Client(url, token="", limiter=limiter)
        reg = anon.register(f"DEMO{uuid.uuid4().hex[:6].upper()}", "COSMIC", "demo")
        add_secret(reg.token)
        client = anon.with_token(reg.token)
        storage = Storage(open_database(db))
        click.echo(f"simulator {url}: system {universe.symbol}, {len(universe.markets)} markets,"
                   f" time x{time_scale:g}; agent {reg.agent.symbol}, "
                   f"{reg.agent.credits:,} credits; database {describe(db)}")
        yard = universe.start_probe_at
        for _ in range(shuttles):
            _buy_ship(client, storage, reg.agent.symbol, "SHIP_LIGHT_SHUTTLE", yard)
        opts = RunOptions(units=units, poll_initial=2.0, poll_settled=4.0, warn_after=120.0,
                          tick=0.5)
        click.echo(f"producing {target}; the tree below refreshes every 10 s")
        code = start_production(client, storage, load_supply_chain(obj.supply_chain_path),
                                target, opts, progress_every=10.0)
        if code == 0:
            factory_id = storage.factories.list()[-1].id
            click.echo("\n" + render_status(storage.factories.load(factory_id),
                                            datetime.now(UTC)))
    finally:
        server.stop()
    sys.exit(code)


def _buy_ship(client: Client, storage: Storage, agent: str, ship_type: str, yard: str) -> None:
    """Buy one ship, written to the ledger like every other spending."""
    now = datetime.now(UTC)
    entry = storage.ledger.intend(agent=agent, ship="", waypoint=yard, good=ship_type,
                                  kind="SHIP", units=1, now=now)
    try:
        ship, price, credits = client.purchase_ship(ship_type, yard)
    except OutcomeUnknown:
        raise click.ClickException(f"buying a {ship_type} at {yard} may or may not have "
                                   "happened; check the fleet before trying again") from None
    storage.ledger.confirm(entry, units=1, price_per_unit=price, total=price,
                           credits_after=credits, server_time=now, now=datetime.now(UTC))
    click.echo(f"bought {ship.symbol} ({ship_type}) for {price:,} credits; {credits:,} left")


@cli.group()
def sim() -> None:
    """The local SpaceTraders-compatible server."""


@sim.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="loopback address")
@click.option("--port", default=8642, show_default=True, type=int)
@click.option("--time-scale", default=1.0, show_default=True, type=float,
              help="divide every game duration (travel, production) by this")
@click.option("--seed", default=1, show_default=True, type=int,
              help="seed of the generated universe")
@click.option("--universe", "universe_dir", type=click.Path(file_okay=False, exists=True),
              help="load a captured system (the spacetraders-data/X1-AD75 layout) instead")
@click.option("--rate-limit/--no-rate-limit", default=True, show_default=True,
              help="enforce the real two-pool rate limit")
@click.option("--faults", default="", help="fault plan, e.g. '429=0.1,500=0.05,lose=30'")
@click.option("--account-token", envvar="SPACETRADERS_ACCOUNT_TOKEN",
              help="accept only this account token for /register (default: any)")
@click.option("--starting-credits", default=175_000, show_default=True,
              type=click.IntRange(min=0), help="credits of new agents (benchmarks need more)")
@click.option("--economy", default=DEFAULT_ECONOMY.name, show_default=True,
              type=click.Choice(list(ECONOMIES)),
              help="how markets make and lose goods: " + "; ".join(
                  f"{e.name}: {e.description}" for e in ECONOMIES.values()))
def sim_serve(host, port, time_scale, seed, universe_dir, rate_limit, faults, account_token,
              starting_credits, economy):
    """Serve the simulator until interrupted."""
    try:
        plan = FaultPlan.parse(faults)
        game = build_game(seed=seed, universe_dir=universe_dir, time_scale=time_scale,
                          account_token=account_token, starting_credits=starting_credits,
                          economy=economy)
        server = SimServer(game, host=host, port=port, rate_limit=rate_limit, faults=plan)
    except (ValueError, OSError) as exc:
        raise click.ClickException(str(exc)) from exc
    universe = game.universe
    click.echo(f"simulator on {server.url} (system {universe.symbol}, {len(universe.markets)} "
               f"markets, time scale {time_scale:g}, {economy} economy)", err=True)
    if universe.showcase:
        click.echo("try: " + ", ".join(f"{k} {v}" for k, v in universe.showcase.items()),
                   err=True)
    _stop_on_sigterm()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


def _stop_on_sigterm() -> None:
    """A supervisor's SIGTERM stops the process as cleanly as Ctrl-C does."""
    def raise_interrupt(_signum, _frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, raise_interrupt)


def main() -> None:
    cli(prog_name="goods-factory")


if __name__ == "__main__":
    main()
