"""The `goods-factory` command line: where everything is wired together."""

from __future__ import annotations

import json

import click

from domain.enums import SupplyLevel
from domain.errors import DomainError
from domain.navigation import Place
from domain.plan import render_tree, resolve
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


def main() -> None:
    cli(prog_name="goods-factory")


if __name__ == "__main__":
    main()
