"""The simulator's markets: hidden stock per good, prices from stock, production ticks.

Stock is measured against the good's initial trade volume (`scale`), so supply levels
keep their meaning when the volume grows. Each tick an exporter turns a few units of each
input it imports into one unit of output, up to a rate set by its activity, and shows
RESTRICTED while an input runs short; imports drift back toward what NPC traders bring
(nothing, for a starved exporter); NPC buyers take some of the exports. MECHANICS.md §5
gives the observations this follows; no formula of the real game is published, so the
constants form a profile (`Economy`), and the bot is tested on more than one.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

from domain.enums import ActivityLevel, SupplyLevel, TradeType

MAX_TICKS_PER_ADVANCE = 2_000
# Upper bound of each supply level, in multiples of the good's scale.
BANDS = ((SupplyLevel.SCARCE, 0.25), (SupplyLevel.LIMITED, 0.6), (SupplyLevel.MODERATE, 1.5),
         (SupplyLevel.HIGH, 3.0))
MIDPOINT = {SupplyLevel.SCARCE: 0.12, SupplyLevel.LIMITED: 0.42, SupplyLevel.MODERATE: 1.0,
            SupplyLevel.HIGH: 2.2, SupplyLevel.ABUNDANT: 4.5}
ROLE = {TradeType.EXPORT: 1.0, TradeType.IMPORT: 1.6, TradeType.EXCHANGE: 1.25}
SPREAD = {TradeType.EXPORT: 2.05, TradeType.IMPORT: 2.05, TradeType.EXCHANGE: 1.06}


@dataclass(frozen=True)
class Economy:
    """How markets make and lose goods: the unpublished constants, as one named guess."""

    name: str
    description: str
    tick_seconds: float = 30.0  # game seconds between production ticks
    rate: tuple[float, float, float] = (0.15, 0.25, 0.35)  # WEAK, GROWING, STRONG; × scale
    inputs_per_unit: float = 1.0  # units of each input consumed per unit made
    export_drain: float = 0.001  # share of the surplus above target NPC buyers take per tick
    npc_demand: float = 0.0  # share of a made export's whole stock NPC buyers take per tick
    import_inflow: float = 0.10  # share of the gap below target NPC sellers fill per tick
    import_use: float = 0.001  # share of an import's surplus consumed per tick
    exchange_drift: float = 0.05

    def production_rate(self, activity: ActivityLevel | None) -> float:
        """Units per tick, as a share of the good's scale (RESTRICTED runs like WEAK)."""
        weak, growing, strong = self.rate
        return {ActivityLevel.GROWING: growing, ActivityLevel.STRONG: strong}.get(
            activity or ActivityLevel.WEAK, weak)


ECONOMIES = {e.name: e for e in (
    Economy("gentle", "one lot of inputs lifts a starved export; surplus drains slowly"),
    Economy("hungry", "each unit made eats 4 of every input and NPC buyers take 0.2 % of a "
            "made export's stock every tick (half of it in about three game hours), so "
            "lifting a starved export takes several lots and output keeps draining (NPC "
            "traders keep the other markets fed)",
            inputs_per_unit=4.0, npc_demand=0.002, import_inflow=0.5),
    Economy("slow", "production and recovery run three times slower",
            rate=(0.05, 0.25 / 3, 0.35 / 3), import_inflow=0.10 / 3,
            exchange_drift=0.05 / 3),
    Economy("strict", "hungry and slow together", rate=(0.05, 0.25 / 3, 0.35 / 3),
            inputs_per_unit=4.0, npc_demand=0.002, import_inflow=0.5 / 3,
            exchange_drift=0.05 / 3),
)}
DEFAULT_ECONOMY = ECONOMIES["gentle"]
VOLUME_GROWTH_AFTER = 5  # traded volumes before the trade volume grows
TRANSACTIONS_SHOWN = 20


def price_factor(stock: float, scale: float) -> float:
    """Scarce goods cost more: about ×2 when scarce, ×0.6 when abundant."""
    ratio = max(stock, 0.02 * scale) / scale
    return min(2.2, max(0.45, ratio ** -0.5))


@dataclass
class Stock:
    """One good at one market."""

    symbol: str
    type: TradeType
    trade_volume: int
    base_price: float  # sell price at the middle of MODERATE, before the role factor
    stock: float
    target: float
    activity: ActivityLevel | None = None  # the market's own pace; None for exchange goods
    spread: float = 0.0
    restricted: bool = False
    traded: int = 0
    scale: float = 0.0

    def __post_init__(self):
        self.scale = self.scale or float(self.trade_volume)
        self.spread = self.spread or SPREAD[self.type]
        self._max_volume = self.trade_volume * 2

    @property
    def supply(self) -> SupplyLevel:
        for level, upper in BANDS:
            if self.stock < upper * self.scale:
                return level
        return SupplyLevel.ABUNDANT

    @property
    def shown_activity(self) -> ActivityLevel | None:
        if self.activity is None:
            return None
        return ActivityLevel.RESTRICTED if self.restricted else self.activity

    @property
    def sell_price(self) -> int:
        """What the market pays an agent per unit."""
        return max(1, round(self.base_price * ROLE[self.type]
                            * price_factor(self.stock, self.scale)))

    @property
    def purchase_price(self) -> int:
        """What an agent pays the market per unit."""
        return max(self.sell_price + 1, round(self.sell_price * self.spread))

    def quote(self) -> dict:
        """A `MarketTradeGood`."""
        out = {"symbol": self.symbol, "type": self.type.value, "tradeVolume": self.trade_volume,
               "supply": self.supply.name, "purchasePrice": self.purchase_price,
               "sellPrice": self.sell_price}
        if self.shown_activity is not None:
            out["activity"] = self.shown_activity.name
        return out

    def trade(self, units: int) -> None:
        """Agents bought (negative) or sold (positive) `units`; volume grows with use."""
        self.stock = max(0.0, self.stock + units)
        self.traded += abs(units)
        if self.traded >= VOLUME_GROWTH_AFTER * self.trade_volume and \
                self.trade_volume < self._max_volume:
            self.traded = 0
            self.trade_volume = min(self._max_volume,
                                    self.trade_volume + max(1, self.trade_volume // 10))

    @classmethod
    def at_level(cls, symbol: str, type_: TradeType, trade_volume: int, base_price: float,
                 supply: SupplyLevel, activity: ActivityLevel | None = None,
                 target_supply: SupplyLevel | None = None) -> Stock:
        stock = MIDPOINT[supply] * trade_volume
        target = stock if target_supply is None else MIDPOINT[target_supply] * trade_volume
        return cls(symbol, type_, trade_volume, base_price, stock, target, activity)

    @classmethod
    def from_quote(cls, quote: dict) -> Stock:
        """Seed from a captured `MarketTradeGood` so that its first quote matches it."""
        type_ = TradeType(quote["type"])
        tv = int(quote["tradeVolume"])
        supply = SupplyLevel.parse(quote["supply"])
        stock = MIDPOINT[supply] * tv
        activity = ActivityLevel.parse_optional(quote.get("activity"))
        base = quote["sellPrice"] / (ROLE[type_] * price_factor(stock, tv))
        spread = quote["purchasePrice"] / max(1, quote["sellPrice"])
        item = cls(quote["symbol"], type_, tv, base, stock, stock,
                   None if type_ is TradeType.EXCHANGE else (
                       ActivityLevel.WEAK if activity is ActivityLevel.RESTRICTED else activity),
                   spread=spread)
        item.restricted = activity is ActivityLevel.RESTRICTED
        return item


@dataclass
class MarketState:
    """A marketplace: its goods, what each export consumes, and its recent transactions."""

    waypoint: str
    goods: dict[str, Stock]
    recipes: dict[str, tuple[str, ...]] = field(default_factory=dict)
    economy: Economy = DEFAULT_ECONOMY
    last_tick: float = 0.0
    transactions: deque = field(default_factory=lambda: deque(maxlen=TRANSACTIONS_SHOWN))

    def symbols(self, type_: TradeType) -> list[str]:
        return [s for s, g in self.goods.items() if g.type is type_]

    def advance(self, game_now: float) -> None:
        """Run the production ticks due by `game_now` (game seconds)."""
        e = self.economy
        due = math.floor((game_now - self.last_tick) / e.tick_seconds)
        if due <= 0:
            return
        for _ in range(min(due, MAX_TICKS_PER_ADVANCE)):
            self._tick()
        self.last_tick += due * e.tick_seconds

    def _tick(self) -> None:
        e = self.economy
        for symbol, inputs in self.recipes.items():
            out = self.goods[symbol]
            if not inputs:
                continue
            rate = e.production_rate(out.activity) * out.scale
            available = min(self.goods[i].stock for i in inputs) / e.inputs_per_unit
            made = min(rate, available)
            for i in inputs:
                self.goods[i].stock -= made * e.inputs_per_unit
            out.stock += made - out.stock * e.npc_demand
            out.restricted = available < rate
        for good in self.goods.values():
            gap = good.target - good.stock
            if good.type is TradeType.EXPORT:
                if gap < 0:
                    good.stock += gap * e.export_drain
                elif not self.recipes.get(good.symbol):  # extracted: NPC miners top it up
                    good.stock += gap * e.import_inflow
            elif good.type is TradeType.IMPORT:
                good.stock += gap * (e.import_inflow if gap > 0 else e.import_use)
            else:
                good.stock += gap * e.exchange_drift

    def payload(self, with_quotes: bool, trade_goods: dict[str, dict]) -> dict:
        """A `Market`; prices and transactions only when the agent has a ship here."""

        def listing(type_):
            return [_trade_good(s, trade_goods) for s in self.symbols(type_)]

        body = {"symbol": self.waypoint, "exports": listing(TradeType.EXPORT),
                "imports": listing(TradeType.IMPORT), "exchange": listing(TradeType.EXCHANGE)}
        if with_quotes:
            body["tradeGoods"] = [g.quote() for g in self.goods.values()]
            body["transactions"] = list(self.transactions)
        return body


def _trade_good(symbol: str, trade_goods: dict[str, dict]) -> dict:
    known = trade_goods.get(symbol)
    if known:
        return {"symbol": symbol, "name": known["name"], "description": known["description"]}
    name = symbol.replace("_", " ").title()
    return {"symbol": symbol, "name": name, "description": f"{name}."}
