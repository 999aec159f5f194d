"""The `goods-factory` command line: where everything is wired together."""

from __future__ import annotations

import json
import signal

import click

from domain.enums import SupplyLevel
from domain.errors import DomainError
from domain.navigation import Place
from domain.plan import render_tree, resolve
from sim.faults import FaultPlan
from sim.server import SimServer, build_game
from storage.files import DataFileError, load_markets, load_places, load_supply_chain

USER_ERRORS: tuple[type[Exception], ...] = (DomainError, DataFileError)


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


@click.group(cls=_Cli, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--supply-chain", "supply_chain_path", envvar="GOODS_SUPPLY_CHAIN_PATH",
              type=click.Path(dir_okay=False), help="exportToImportMap JSON instead of the "
              "embedded copy [env GOODS_SUPPLY_CHAIN_PATH]")
@click.pass_context
def cli(ctx: click.Context, supply_chain_path: str | None) -> None:
    """Produce any trade good in SpaceTraders with a fleet of ships."""
    ctx.ensure_object(dict)
    ctx.obj["supply_chain_path"] = supply_chain_path


@cli.command()
@click.argument("target")
@click.option("--markets", "markets_path", required=True, type=click.Path(dir_okay=False),
              help="captured Market payloads (a JSON list, as GET .../market returns them)")
@click.option("--waypoints", "waypoints_path", type=click.Path(dir_okay=False),
              help="waypoint positions, to break ties by distance")
@click.option("--from", "origin", metavar="WAYPOINT", help="where distances are measured from")
@click.option("--min-supply", default="MODERATE", callback=_supply_level,
              help="buy where a seller has at least this supply [MODERATE]")
@click.option("--json", "as_json", is_flag=True, help="print the tree as JSON")
@click.pass_context
def plan(ctx, target, markets_path, waypoints_path, origin, min_supply, as_json):
    """Show how TARGET would be produced, from captured market data (offline)."""
    chain = load_supply_chain(ctx.obj["supply_chain_path"])
    markets = load_markets(markets_path)
    places: dict[str, Place] | None = None
    if waypoints_path:
        places = load_places(waypoints_path, markets)
    if origin and (not places or origin not in places):
        raise click.BadParameter(f"{origin} is not in the waypoints file", param_hint="--from")
    tree = resolve(target.upper(), chain, markets, min_supply=min_supply,
                   origin=places[origin] if origin else None, places=places)
    if as_json:
        click.echo(json.dumps(tree.to_dict(), indent=2))
    else:
        click.echo(render_tree(tree))
        fabricated = sum(1 for n in tree.flatten() if not n.is_leaf)
        click.echo(f"\n{len(tree.flatten())} nodes ({fabricated} FABRICATE), depth "
                   f"{tree.depth()}; raw materials: {', '.join(tree.raw_materials())}")


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
def sim_serve(host, port, time_scale, seed, universe_dir, rate_limit, faults, account_token):
    """Serve the simulator until interrupted."""
    try:
        plan = FaultPlan.parse(faults)
        game = build_game(seed=seed, universe_dir=universe_dir, time_scale=time_scale,
                          account_token=account_token)
        server = SimServer(game, host=host, port=port, rate_limit=rate_limit, faults=plan)
    except (ValueError, OSError) as exc:
        raise click.ClickException(str(exc)) from exc
    universe = game.universe
    click.echo(f"simulator on {server.url} (system {universe.symbol}, {len(universe.markets)} "
               f"markets, time scale {time_scale:g})", err=True)
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
