from domain.enums import SupplyLevel
from domain.ranking import buyable, price_ceiling, rank_sellers
from tests.builders import market


def test_ceiling_is_factor_times_median_of_sellers_only():
    markets = [
        market("X1-T-A", exports=["IRON"], IRON=("HIGH", "WEAK", 80)),
        market("X1-T-B", exports=["IRON"], IRON=("LIMITED", "WEAK", 100)),
        market("X1-T-C", exchange=["IRON"], IRON=("MODERATE", None, 120)),
        market("X1-T-D", imports=["IRON"], IRON=("SCARCE", "WEAK", 900)),
    ]
    assert price_ceiling("IRON", markets) == 150
    assert price_ceiling("IRON", markets, factor=2.0) == 200
    assert price_ceiling("IRON", markets, factor=None) is None
    assert price_ceiling("GOLD", markets) is None


def test_rank_skips_markets_without_quotes_and_importers():
    markets = [
        market("X1-T-A", exports=["IRON"], quotes=False),
        market("X1-T-B", exports=["IRON"], IRON=("LIMITED", "STRONG", 100)),
        market("X1-T-C", exports=["IRON"], IRON=("LIMITED", "WEAK", 100)),
        market("X1-T-D", imports=["IRON"], IRON=("ABUNDANT", "WEAK", 100)),
    ]
    assert [m.waypoint for m, _ in rank_sellers("IRON", markets)] == ["X1-T-B", "X1-T-C"]


def test_a_lot_is_buyable_at_the_threshold_and_at_most_the_ceiling():
    q = market("X1-T-A", exports=["IRON"], IRON=("MODERATE", "WEAK", 150)).quote("IRON")
    assert buyable(q, SupplyLevel.MODERATE, 150) and buyable(q, SupplyLevel.MODERATE, None)
    assert not buyable(q, SupplyLevel.MODERATE, 149), "dearer than the ceiling"
    assert not buyable(q, SupplyLevel.HIGH, None) and not buyable(None, SupplyLevel.SCARCE, None)
