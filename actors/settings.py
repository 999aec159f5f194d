"""Every tunable of a run, with its default, in one place (the CLI and the tests read it)."""

from __future__ import annotations

from dataclasses import dataclass

from domain.enums import SupplyLevel
from domain.ranking import DEFAULT_CEILING_FACTOR

POLL_INITIAL_ENV = "GOODS_POLL_INTERVAL_INITIAL"
POLL_SETTLED_ENV = "GOODS_POLL_INTERVAL_SETTLED"


@dataclass(frozen=True)
class Settings:
    min_supply: SupplyLevel = SupplyLevel.MODERATE
    strict_supply: bool = False  # refuse raw materials below the threshold
    reserve: int = 0  # credits never spent
    ceiling_factor: float | None = DEFAULT_CEILING_FACTOR  # × the reference price
    per_source_cap: int = 2  # haulers buying one good at one market at once
    feeds_per_input: int = 1  # lots of one input on their way to one exporter at once
    max_ships: int | None = None  # haulers working for one factory at once
    warn_after: float = 1200.0  # seconds of production wait before a warning
    slow_after_feeds: int = 3  # lots of each input fed with no answer before a warning
    blind_check_after: float = 60.0  # nobody can watch an exporter: send a ship to look
    # seconds an exporter is given to answer a feed that landed: a ship stands by there
    # meanwhile, and a round counts as unanswered (more lots go on the way) only after it
    answer_wait: float = 180.0
    market_max_age: float = 3600.0  # older quotes are read again before the first plan
    quote_fresh_for: float = 10.0  # a reading this recent serves a trade's first slice
    heartbeat_every: float = 5.0  # the lease on a factory is renewed this often
    lease: float = 60.0  # a runner silent for longer is taken to be dead
    poll_initial: float = 30.0  # first poll of a watched market after the watch starts
    poll_settled: float = 60.0  # later polls
    # days of market readings kept for the dashboard's charts: a run left going for weeks
    # would otherwise grow the database by every poll (None keeps them all)
    history_days: float | None = 7.0
    tick: float = 0.5  # how often actors look at the time
    # seconds past a flight's arrival before the ship acts there: the server gives times
    # to the millisecond, and its clock and ours differ a little
    arrival_slack: float = 0.05
    recheck: float = 5.0  # a coordinator with nothing due looks again this often
    # first wait before a market that sold nothing is tried again (doubling, up to poll_settled)
    not_ready_backoff: float = 10.0
    retry_backoff: float = 5.0  # first wait before a failed task is retried (doubling)
    max_ship_restarts: int = 3  # a ship whose actor dies this often is benched
    max_rebuilds: int = 3  # a coordinator that dies this often ends the run
