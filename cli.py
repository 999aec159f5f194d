"""The `goods-factory` command line: options and output; the work is in actors.service."""

from __future__ import annotations

import json
import math
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import click
import structlog

from actors.logs import add_secret, configure
from actors.notify import notify, watchdog
from actors.runtime import Outcome
from actors.service import Order, Service
from actors.settings import POLL_INITIAL_ENV, POLL_SETTLED_ENV, Settings
from api.client import Client
from api.errors import ApiError
from api.ratelimit import RateLimiter
from domain.diagrams import dot, mermaid
from domain.enums import SupplyLevel
from domain.errors import DomainError, NeedsMarketData
from domain.factory import Destination, FactoryStatus
from domain.markets import system_of
from domain.navigation import Place
from domain.plan import render_tree, resolve
from domain.report import outcome_line, render_status, status_dict
from domain.supply_chain import SupplyChain
from sim.economy import DEFAULT_ECONOMY, ECONOMIES
from sim.faults import FaultPlan
from sim.server import SimServer, build_game
from storage.db import DatabaseError, describe, open_database, resolve_url
from storage.files import DataFileError, load_markets, load_places, load_supply_chain
from storage.repositories import Storage
from views.terminal import watch_status

USER_ERRORS: tuple[type[Exception], ...] = (DomainError, DataFileError, DatabaseError, ApiError)
RATE_LIMIT_ENV = "GOODS_FACTORY_RATE_LIMIT"
EXIT_INTERRUPTED = 130
LEVELS = click.Choice([level.name for level in SupplyLevel], case_sensitive=False)
log = structlog.get_logger("cli")


def _version() -> str:
    try:
        return version("goods-factory")
    except PackageNotFoundError:  # pragma: no cover - run from a bare checkout
        return "unknown"


class _Cli(click.Group):
    """Turns the errors a player can fix into one line and a non-zero exit (a JSON event
    when the logs are JSON)."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except USER_ERRORS as exc:
            self._fail(ctx, click.ClickException(str(exc)))
        except click.UsageError:
            raise
        except click.ClickException as exc:
            self._fail(ctx, exc)

    @staticmethod
    def _fail(ctx: click.Context, exc: click.ClickException):
        obj = ctx.obj
        if isinstance(obj, Context) and obj.json_logs:
            log.error("error", message=exc.format_message())
            sys.exit(exc.exit_code)
        raise exc


@dataclass
class Context:
    base_url: str | None
    token: str | None
    db: str | None
    supply_chain_path: str | None
    log_format: str
    rate_limit: str | None = None

    @property
    def json_logs(self) -> bool:
        return self.log_format == "json"

    def chain(self) -> SupplyChain:
        return load_supply_chain(self.supply_chain_path)

    def storage(self) -> Storage:
        return Storage(open_database(resolve_url(self.db)))

    def client(self) -> Client:
        if not self.token:
            raise click.ClickException("no token: pass --token or set SPACETRADERS_TOKEN "
                                       "(goods-factory register creates an agent)")
        return Client(self.base_url, self.token, limiter=limiter_from(self.rate_limit))

    def say(self, event: str, text: str, **fields) -> None:
        """A line for the player: text on stdout, or a JSON event with the logs."""
        if self.json_logs:
            log.info(event, message=text, **fields)
        else:
            click.echo(text)


@click.group(cls=_Cli, context_settings={"help_option_names": ["-h", "--help"],
                                         "show_default": True})
@click.version_option(_version(), prog_name="goods-factory")
@click.option("--base-url", envvar="SPACETRADERS_BASE_URL", show_envvar=True,
              help="API root [default: the real server]")
@click.option("--token", envvar="SPACETRADERS_TOKEN", show_envvar=True, help="agent token")
@click.option("--db", envvar="GOODS_FACTORY_DB", show_envvar=True,
              help="SQLite path or postgresql:// URL [default: "
                   "~/.local/share/goods-factory/goods-factory.db]")
@click.option("--supply-chain", "supply_chain_path", envvar="GOODS_SUPPLY_CHAIN_PATH",
              show_envvar=True, type=click.Path(dir_okay=False),
              help="exportToImportMap JSON instead of the embedded copy")
@click.option("--log-format", type=click.Choice(["json", "console"]),
              help="log lines as JSON (the default when stderr is not a terminal) or for "
                   "people")
@click.option("--log-level", default="INFO",
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False))
@click.option("--rate-limit", envvar=RATE_LIMIT_ENV, show_envvar=True, metavar="SPEC",
              help="the client's pace, for local servers only: 'none' or "
                   "'PER_SECOND,BURST[,WINDOW]' [default: the real server's limits]")
@click.pass_context
def cli(ctx: click.Context, base_url, token, db, supply_chain_path, log_format, log_level,
        rate_limit):
    """Produce any trade good in SpaceTraders with a fleet of ships."""
    add_secret(token)
    chosen = configure(log_format, log_level)
    ctx.obj = Context(base_url, token, db, supply_chain_path, chosen, rate_limit)


# --- planning ---------------------------------------------------------------------------


@cli.command()
@click.argument("target")
@click.option("--markets", "markets_path", type=click.Path(dir_okay=False),
              help="plan offline from captured Market payloads (a JSON list) instead of the "
                   "markets stored by earlier runs")
@click.option("--waypoints", "waypoints_path", type=click.Path(dir_okay=False),
              help="waypoint positions, to break ties by distance (with --markets)")
@click.option("--from", "origin", metavar="WAYPOINT", help="where distances are measured from")
@click.option("--system", help="system to plan in (without --markets) [default: the HQ's]")
@click.option("--min-supply", default="MODERATE", type=LEVELS,
              help="buy where a seller has at least this supply")
@click.option("--strict-supply", is_flag=True,
              help="refuse a raw material whose sellers are all below --min-supply")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "mermaid", "dot"]),
              default="text", help="text tree, the seed plan's JSON, or a diagram")
@click.option("--json", "as_json", is_flag=True, help="same as --format json")
@click.pass_obj
def plan(obj: Context, target, markets_path, waypoints_path, origin, system, min_supply,
         strict_supply, fmt, as_json):
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
        tree = resolve(target.upper(), chain, markets, min_supply=SupplyLevel.parse(min_supply),
                       strict_supply=strict_supply,
                       origin=places[origin] if origin else None, places=places)
    except NeedsMarketData as need:
        raise click.ClickException(f"{need}; produce reads them with its ships") from None
    fmt = "json" if as_json else fmt
    if fmt == "json":
        click.echo(json.dumps(tree.to_dict(), indent=2))
    elif fmt == "mermaid":
        click.echo(mermaid(tree))
    elif fmt == "dot":
        click.echo(dot(tree))
    else:
        click.echo(render_tree(tree))
        fabricated = sum(1 for n in tree.flatten() if not n.is_leaf)
        click.echo(f"\n{len(tree.flatten())} nodes ({fabricated} FABRICATE), depth "
                   f"{tree.depth()}; raw materials: {', '.join(tree.raw_materials())}")


def _home_system(obj: Context) -> str:
    return system_of(obj.client().agent().headquarters)


def limiter_from(spec: str | None) -> RateLimiter:
    """The real server's limits, unless `--rate-limit` says otherwise.

    For local servers only: `none`, or `PER_SECOND,BURST[,WINDOW_SECONDS]`.
    """
    raw = (spec or "").strip().lower()
    if not raw:
        return RateLimiter()
    if raw == "none":
        return RateLimiter.unlimited()
    try:
        parts = [float(p) for p in raw.split(",")]
        per_second, burst = int(parts[0]), int(parts[1])
        window = parts[2] if len(parts) > 2 else 60.0
    except (ValueError, IndexError):
        raise click.ClickException(f"--rate-limit ({RATE_LIMIT_ENV}) must be 'none' or "
                                   f"'PER_SECOND,BURST[,WINDOW]', not {raw!r}") from None
    return RateLimiter(per_second, burst, window)


# --- production -------------------------------------------------------------------------


def _factor(_ctx, _param, raw: str) -> float | None:
    if raw.lower() == "none":
        return None
    try:
        value = float(raw)
    except ValueError:
        raise click.BadParameter(f"{raw!r} is not a number or 'none'") from None
    if not math.isfinite(value) or value <= 0:
        raise click.BadParameter(f"must be a positive number or 'none', not {raw!r}")
    return value


def _destination(_ctx, _param, raw: str) -> Destination:
    try:
        return Destination.parse(raw)
    except DomainError as exc:
        raise click.BadParameter(str(exc)) from None


def _poll_options(f):
    f = click.option("--poll-settled", type=click.FloatRange(min=0.05), default=60.0,
                     envvar=POLL_SETTLED_ENV, show_envvar=True,
                     help="seconds between later polls of a watched market")(f)
    return click.option("--poll-initial", type=click.FloatRange(min=0.05), default=30.0,
                        envvar=POLL_INITIAL_ENV, show_envvar=True,
                        help="seconds before the first poll of a newly watched market")(f)


def _metrics_option(f):
    return click.option("--metrics-port", type=click.IntRange(1, 65535),
                        envvar="GOODS_FACTORY_METRICS_PORT", show_envvar=True,
                        help="serve this process's API metrics (Prometheus) on "
                        "127.0.0.1:PORT/metrics")(f)


def _serve_metrics(client: Client, port: int | None) -> None:
    """Requests by endpoint and status, 429s and rate-limiter waits of this process."""
    if port is None:
        return
    from prometheus_client import CollectorRegistry, start_http_server

    from views.metrics import ClientCollector

    registry = CollectorRegistry()
    registry.register(ClientCollector(client))
    start_http_server(port, addr="127.0.0.1", registry=registry)


def _settings(**values) -> Settings:
    polls = {"poll_initial": values.pop("poll_initial"),
             "poll_settled": values.pop("poll_settled")}
    settings = Settings(**{k: v for k, v in values.items() if v is not None}, **polls)
    # an unwatched exporter is looked at, and a feed given time to be answered, on the
    # scale of the settled poll
    return replace(settings, blind_check_after=settings.poll_settled,
                   answer_wait=3 * settings.poll_settled)


def _progress(obj: Context, storage: Storage, ids: list[str], every: float | None):
    """Show the status trees every `every` seconds, when they changed."""
    if not every:
        return None
    state = {"last": 0.0, "text": ""}

    def show():
        if time.monotonic() - state["last"] < every:
            return
        state["last"] = time.monotonic()
        factories = [storage.factories.load(i) for i in ids]
        now = datetime.now(UTC)
        text = "\n\n".join(render_status(f, now) for f in factories)
        if text != state["text"]:
            state["text"] = text
            if obj.json_logs:
                for f in factories:
                    log.info("factory.status", status=status_dict(f, now))
            else:
                click.echo("\n" + text + "\n")

    return show


def _finish(obj: Context, storage: Storage, ids: list[str], outcome: Outcome) -> int:
    """Say how the run ended; the exit code of `produce`, `resume` and `run`."""
    if outcome.error:
        obj.say("run.failed", f"stopped: {outcome.error}", error=outcome.error)
        return 1
    if not outcome.finished:
        obj.say("run.interrupted", "interrupted: the factories can be continued with "
                "`goods-factory resume`")
        return EXIT_INTERRUPTED
    code = 0
    for factory_id in ids:
        factory = storage.factories.load(factory_id)
        obj.say("factory.outcome", outcome_line(factory), factory=factory.id,
                status=factory.status.value, units=factory.units_acquired,
                credits=factory.credits_spent)
        if factory.status is not FactoryStatus.COMPLETED:
            code = 1
    return code


@cli.command()
@click.argument("target")
@click.option("--system", help="system to produce in [default: the HQ's]")
@click.option("--ships", help="use only these haulers (comma-separated symbols)")
@click.option("--max-ships", type=click.IntRange(min=1), help="at most N haulers at once")
@click.option("--units", type=click.IntRange(min=1),
              help="produce N units, several lots at once [default: one load of whatever is "
                   "available]")
@click.option("--lot", type=click.IntRange(min=1),
              help="units per lot of the target and per feed of an input [default: the "
                   "smallest hauler's hold]")
@click.option("--deliver", default="hold", callback=_destination,
              help="where the product goes: hold, sell:WAYPOINT, construction[:WAYPOINT] or "
                   "contract:ID")
@click.option("--min-supply", default="MODERATE", type=LEVELS,
              help="buy where supply is at least this; else make it")
@click.option("--strict-supply", is_flag=True,
              help="refuse a raw material whose sellers are all below --min-supply")
@click.option("--reserve", default=0, type=click.IntRange(min=0),
              help="credits never to spend")
@click.option("--max-price-factor", default="1.5", callback=_factor,
              help="never pay more than this × the good's reference price ('none': no cap)")
@_poll_options
@_metrics_option
@click.option("--progress", "progress_every", type=float,
              help="show the status tree every N seconds")
@click.option("--detach", is_flag=True,
              help="only record the factory: a `goods-factory run` picks it up")
@click.pass_obj
def produce(obj: Context, target, system, ships, max_ships, units, lot, deliver, min_supply,
            strict_supply, reserve, max_price_factor, poll_initial, poll_settled,
            metrics_port, progress_every, detach):
    """Produce TARGET in the foreground until done (exit 0) or failed (exit 1)."""
    settings = _settings(min_supply=SupplyLevel.parse(min_supply), strict_supply=strict_supply,
                         reserve=reserve, ceiling_factor=max_price_factor, max_ships=max_ships,
                         poll_initial=poll_initial, poll_settled=poll_settled)
    order = Order(target, system, tuple(ships.split(",")) if ships else None, units, lot,
                  deliver)
    storage = obj.storage()
    service = Service(obj.client(), storage, obj.chain(), settings)
    if not detach:
        _serve_metrics(service.client, metrics_port)
    sys.exit(_produce(obj, service, order, progress_every, detach))


def _produce(obj: Context, service: Service, order: Order, progress_every: float | None,
             detach: bool = False) -> int:
    runtime = service.runtime(ships=set(order.ships) if order.ships else None)
    try:
        factory = service.create(runtime, order, None if detach else runtime.owner)
    except BaseException:
        runtime.shutdown()
        raise
    if detach:
        runtime.shutdown()
        obj.say("factory.submitted", f"factory {factory.id} recorded: `goods-factory run` "
                "will produce it", factory=factory.id)
        return 0
    obj.say("factory.created", f"factory {factory.id}: producing {factory.target} in "
            f"{factory.system} (lot {factory.lot}, to {factory.destination})",
            factory=factory.id)
    storage = service.storage
    outcome = service.run(runtime, [factory.id],
                          _progress(obj, storage, [factory.id], progress_every))
    return _finish(obj, storage, [factory.id], outcome)


@cli.command()
@_poll_options
@_metrics_option
@click.option("--progress", "progress_every", type=float,
              help="show the status trees every N seconds")
@click.pass_obj
def resume(obj: Context, poll_initial, poll_settled, metrics_port, progress_every):
    """Continue the factories a crash or a signal interrupted, re-reading ship state."""
    storage = obj.storage()
    service = Service(obj.client(), storage, obj.chain(),
                      _settings(poll_initial=poll_initial, poll_settled=poll_settled))
    _serve_metrics(service.client, metrics_port)
    runtime = service.runtime(discover=False)
    try:
        taken = service.take_over(runtime)
        if taken:
            runtime.discover()
    except BaseException:
        runtime.shutdown()
        raise
    if not taken:
        runtime.shutdown()
        obj.say("resume.nothing", "nothing to resume")
        return
    obj.say("resume.taken", f"resuming {', '.join(taken)}", factories=taken)
    outcome = service.run(runtime, taken, _progress(obj, storage, taken, progress_every))
    sys.exit(_finish(obj, storage, taken, outcome))


@cli.command()
@_poll_options
@_metrics_option
@click.option("--every", default=5.0, type=click.FloatRange(min=0.5),
              help="seconds between looks for new or interrupted factories")
@click.pass_obj
def run(obj: Context, poll_initial, poll_settled, metrics_port, every):
    """Run every factory of the agent, now and later, until SIGTERM (exit 0). For a
    supervisor: it resumes what was interrupted and picks up `produce --detach`."""
    storage = obj.storage()
    service = Service(obj.client(), storage, obj.chain(),
                      _settings(poll_initial=poll_initial, poll_settled=poll_settled))
    _serve_metrics(service.client, metrics_port)
    runtime = service.runtime(watchdog=watchdog())
    notify("READY=1")
    obj.say("run.started", f"running the factories of {service.agent.symbol} (owner "
            f"{runtime.owner})", owner=runtime.owner)
    outcome = service.serve(runtime, every=every, on_start=lambda f: obj.say(
        "run.adopted", f"running {f}", factory=f))
    notify("STOPPING=1")
    if outcome.error:
        obj.say("run.failed", f"stopped: {outcome.error}", error=outcome.error)
        sys.exit(1)
    obj.say("run.stopped", "stopped on request; everything is resumable")


# --- looking ----------------------------------------------------------------------------


@cli.command()
@click.argument("factory_id", required=False)
@click.option("--json", "as_json", is_flag=True)
@click.option("--watch", is_flag=True,
              help="keep the tree on screen, refreshed in place, until it ends (Ctrl-C)")
@click.option("--every", default=2.0, type=click.FloatRange(min=0.2),
              help="seconds between refreshes with --watch")
@click.pass_obj
def status(obj: Context, factory_id, as_json, watch, every):
    """The factory's tree with each node's state, ships, units, cost and wait (default: the
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
    if watch:
        watch_status(storage, factory_id, every)
    elif as_json:
        click.echo(json.dumps(status_dict(factory, datetime.now(UTC)), indent=2))
    else:
        click.echo(render_status(factory, datetime.now(UTC), Settings().ceiling_factor))


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="address to listen on (loopback: only this machine can see it)")
@click.option("--port", default=8700, show_default=True, type=click.IntRange(0, 65535))
@click.pass_obj
def web(obj: Context, host, port):
    """A read-only dashboard of every factory in the database, live in a browser, with
    Prometheus metrics on /metrics."""
    from views.web import serve

    storage = obj.storage()
    obj.say("web.started", f"dashboard on http://{host}:{port}/ (metrics on /metrics)",
            host=host, port=port)
    serve(storage, host, port)


@cli.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def list_(obj: Context, as_json):
    """All factories, oldest first."""
    rows = obj.storage().factories.list()
    if as_json:
        click.echo(json.dumps([r.to_dict() for r in rows], indent=2))
        return
    if not rows:
        click.echo("no factories yet")
        return
    click.echo(f"{'ID':<12} {'TARGET':<22} {'STATUS':<10} {'UNITS':>9} {'CREDITS':>12}  CREATED")
    for r in rows:
        units = f"{r.units_acquired}/{r.units_wanted}" if r.units_wanted else str(
            r.units_acquired)
        click.echo(f"{r.id:<12} {r.target:<22} {r.status.value:<10} {units:>9} "
                   f"{r.credits_spent:>12,}  {r.created_at:%Y-%m-%d %H:%M}")


@cli.command()
@click.argument("factory_id")
@click.pass_obj
def stop(obj: Context, factory_id):
    """Stop a factory for good: its runner stops within seconds, ships are freed."""
    service = Service(None, obj.storage(), SupplyChain({}))
    click.echo(service.stop(factory_id))


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
        from actors.watcher import MarketBook

        MarketBook(client, storage).know_system(system, again=True)
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


# --- holds and ships --------------------------------------------------------------------


@cli.command()
@click.argument("ships", nargs=-1)
@click.option("--sell", is_flag=True, help="fly there and sell it (else only show the plan)")
@click.pass_obj
def unload(obj: Context, ships, sell):
    """Show what the free ships carry and where it sells best; --sell sells it there."""
    storage = obj.storage()
    service = Service(obj.client(), storage, obj.chain())
    runtime = service.runtime()
    try:
        plan = service.unload(runtime, list(ships) or None, sell, on_sale=lambda s: obj.say(
            "unload.sold", f"{s.ship} sold {s.units} {s.good} at {s.waypoint}", ship=s.ship,
            good=s.good, units=s.units, waypoint=s.waypoint))
    finally:
        runtime.shutdown()
    if not plan:
        obj.say("unload.empty", "the free ships carry nothing")
    for ship, good, units, market in plan:
        if not sell:
            where = f"sells best at {market}" if market else "no market of the system buys it"
            obj.say("unload.plan", f"{ship}: {units} {good}, {where}", ship=ship, good=good,
                    units=units, waypoint=market or None)


@cli.command("buy-ship")
@click.argument("ship_type")
@click.option("--at", "waypoint", help="the shipyard [default: the first one with one of "
              "our ships present that sells it]")
@click.pass_obj
def buy_ship(obj: Context, ship_type, waypoint):
    """Buy a ship (e.g. SHIP_LIGHT_HAULER); the ledger records it like any spending."""
    service = Service(obj.client(), obj.storage(), obj.chain())
    service.settle()
    waypoint = waypoint or service.shipyard_for(ship_type.upper())
    symbol, price, credits = service.buy_ship(ship_type.upper(), waypoint)
    obj.say("ship.bought", f"bought {symbol} ({ship_type.upper()}) for {price:,} credits; "
            f"{credits:,} left", ship=symbol, price=price, credits=credits)


@cli.command()
@click.argument("symbol")
@click.option("--faction", default="COSMIC")
@click.option("--account-token", envvar="SPACETRADERS_ACCOUNT_TOKEN", show_envvar=True,
              required=True, help="from my.spacetraders.io")
@click.pass_obj
def register(obj: Context, symbol, faction, account_token):
    """Register a new agent and print its token (keep it secret)."""
    add_secret(account_token)
    client = Client(obj.base_url, token="")
    reg = client.register(symbol.upper(), faction.upper(), account_token)
    add_secret(reg.token)
    text = (f"agent {reg.agent.symbol} registered at {reg.agent.headquarters} with "
            f"{reg.agent.credits:,} credits and {len(reg.ships)} ships")
    if obj.json_logs:
        log.info("agent.registered", message=text, agent=reg.agent.symbol)
    else:
        click.echo(text, err=True)
    click.echo(reg.token)  # the one thing on stdout: `TOKEN=$(goods-factory register …)`


# --- the demo and the simulator ---------------------------------------------------------


@cli.command()
@click.option("--seed", default=1, type=int)
@click.option("--time-scale", default=40.0, type=float)
@click.option("--target", help="good to produce [default: the universe's depth-2 good]")
@click.option("--units", type=click.IntRange(min=1), help="units to hold at the end")
@click.option("--shuttles", default=1, type=click.IntRange(min=0),
              help="light shuttles to buy before producing")
@click.option("--economy", default=DEFAULT_ECONOMY.name, type=click.Choice(list(ECONOMIES)),
              help="the simulator's economy profile")
@click.option("--rate-limit/--no-rate-limit", default=True,
              help="run the simulator (and pace the client) at the real rate limits")
@click.pass_obj
def demo(obj: Context, seed, time_scale, target, units, shuttles, economy, rate_limit):
    """Start the simulator in-process and produce a good end to end, with live progress."""
    game = build_game(seed=seed, time_scale=time_scale, economy=economy)
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
        storage = Storage(open_database(db))
        click.echo(f"simulator {url}: system {universe.symbol}, {len(universe.markets)} markets,"
                   f" time x{time_scale:g}, {economy} economy; agent {reg.agent.symbol}, "
                   f"{reg.agent.credits:,} credits; database {describe(db)}")
        settings = Settings(poll_initial=2.0, poll_settled=4.0, blind_check_after=4.0,
                            answer_wait=180.0 / time_scale, warn_after=120.0)
        service = Service(anon.with_token(reg.token), storage, load_supply_chain(
            obj.supply_chain_path), settings)
        service.settle()
        for _ in range(shuttles):
            symbol, price, credits = service.buy_ship("SHIP_LIGHT_SHUTTLE",
                                                      universe.start_probe_at)
            click.echo(f"bought {symbol} (SHIP_LIGHT_SHUTTLE) for {price:,} credits; "
                       f"{credits:,} left")
        click.echo(f"producing {target}; the tree below refreshes every 10 s")
        code = _produce(replace(obj, log_format="console"), service, Order(target, units=units),
                        progress_every=10.0)
        if code == 0:
            factory_id = storage.factories.list()[-1].id
            click.echo("\n" + render_status(storage.factories.load(factory_id),
                                            datetime.now(UTC), settings.ceiling_factor))
    finally:
        server.stop()
    sys.exit(code)


@cli.group()
def sim() -> None:
    """The local SpaceTraders-compatible server."""


@sim.command("serve")
@click.option("--host", default="127.0.0.1", help="loopback address")
@click.option("--port", default=8642, type=int)
@click.option("--time-scale", default=1.0, type=float,
              help="divide every game duration (travel, production) by this")
@click.option("--seed", default=1, type=int, help="seed of the generated universe")
@click.option("--universe", "universe_dir", type=click.Path(file_okay=False, exists=True),
              help="load a captured system (the spacetraders-data/X1-AD75 layout) instead")
@click.option("--rate-limit/--no-rate-limit", default=True,
              help="enforce the real two-pool rate limit")
@click.option("--faults", default="", help="fault plan, e.g. '429=0.1,500=0.05,lose=30'")
@click.option("--account-token", envvar="SPACETRADERS_ACCOUNT_TOKEN", show_envvar=True,
              help="accept only this account token for /register [default: any]")
@click.option("--starting-credits", default=175_000,
              type=click.IntRange(min=0), help="credits of new agents (benchmarks need more)")
@click.option("--economy", default=DEFAULT_ECONOMY.name,
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
    import signal

    def raise_interrupt(_signum, _frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, raise_interrupt)


def main() -> None:
    cli(prog_name="goods-factory")


if __name__ == "__main__":
    main()

