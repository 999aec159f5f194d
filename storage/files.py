"""Reading the embedded supply-chain map, the goods catalogue and captured system files."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from functools import cache
from importlib import resources
from pathlib import Path

from domain.markets import MarketSnapshot
from domain.navigation import Place
from domain.supply_chain import SupplyChain

SUPPLY_CHAIN_ENV = "GOODS_SUPPLY_CHAIN_PATH"


class DataFileError(Exception):
    """A data file is missing or not in the expected shape."""


def _package_json(name: str):
    return json.loads(resources.files("domain").joinpath("data", name).read_text("utf-8"))


@cache
def trade_goods() -> dict[str, dict]:
    """symbol -> {symbol, name, description} for the goods the game knows."""
    return {g["symbol"]: g for g in _package_json("trade_goods.json")}


@cache
def default_supply_chain() -> SupplyChain:
    return SupplyChain.from_json(_package_json("supply_chain.json"))


def known_goods() -> frozenset[str]:
    return frozenset(trade_goods()) | default_supply_chain().goods


def load_supply_chain(path: str | os.PathLike | None = None) -> SupplyChain:
    """The map from `path`, else from $GOODS_SUPPLY_CHAIN_PATH, else the embedded copy."""
    path = path or os.environ.get(SUPPLY_CHAIN_ENV)
    if not path:
        return default_supply_chain()
    return SupplyChain.from_json(read_json(path), known=known_goods())


def read_json(path: str | os.PathLike):
    try:
        return json.loads(Path(path).read_text("utf-8"))
    except FileNotFoundError:
        raise DataFileError(f"file not found: {path}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataFileError(f"cannot read {path}: {exc}") from None


def _unwrap_list(data, path) -> list:
    if isinstance(data, Mapping) and "data" in data:
        data = data["data"]
    if isinstance(data, Mapping) and "waypoints" in data:
        data = data["waypoints"]
    if not isinstance(data, list):
        raise DataFileError(f"{path}: expected a JSON list")
    return data


def load_markets(path: str | os.PathLike) -> list[MarketSnapshot]:
    """Captured `Market` payloads (a list, or an API body with `data`)."""
    try:
        return [MarketSnapshot.from_api(m) for m in _unwrap_list(read_json(path), path)]
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise DataFileError(f"{path}: not a list of markets ({type(exc).__name__}: "
                            f"{exc})") from None


def load_places(path: str | os.PathLike, markets: list[MarketSnapshot] = ()) -> dict[str, Place]:
    """Waypoint positions from a waypoints list or a system payload; FUEL from `markets`."""
    fuel = {m.waypoint for m in markets if m.sells("FUEL")}
    try:
        return {
            w["symbol"]: Place(w["symbol"], int(w["x"]), int(w["y"]), w["symbol"] in fuel)
            for w in _unwrap_list(read_json(path), path)
        }
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise DataFileError(f"{path}: not a list of waypoints ({type(exc).__name__}: "
                            f"{exc})") from None

