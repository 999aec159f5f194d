"""After a crash: settle the ledger's open entries against what the server says happened.

A trade is written INTENDED before it is sent. If the process died before writing
CONFIRMED, the market's recent transactions (visible while the ship is still there)
tell whether it went through; it is then confirmed with the server's price, or marked
FAILED. Nothing is ever sent again blindly.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog

from api.client import Client
from api.errors import ApiError
from api.ratelimit import Priority
from storage.repositories import LedgerRecord, LedgerRepository

CLOCK_SKEW = timedelta(seconds=30)
log = structlog.get_logger("recovery")


@dataclass(frozen=True)
class Settled:
    entry: LedgerRecord
    outcome: str  # CONFIRMED, FAILED or UNKNOWN (left open: nothing visible to decide by)


def settle_entry(ledger: LedgerRepository, client: Client, entry: LedgerRecord,
                 now: datetime) -> Settled:
    """Decide one INTENDED entry from the market's transactions."""
    if entry.kind not in ("PURCHASE", "SELL", "REFUEL"):
        return Settled(entry, "UNKNOWN")
    try:
        reading = client.market(entry.waypoint, priority=Priority.ACTION)
    except ApiError as exc:
        log.warning("recovery.unreadable", entry=entry.id, error=str(exc))
        return Settled(entry, "UNKNOWN")
    if not reading.snapshot.has_quotes:  # no ship there: the transactions are hidden
        return Settled(entry, "UNKNOWN")
    kind = "SELL" if entry.kind == "SELL" else "PURCHASE"
    used = ledger.matched_server_times(entry.ship)
    for tx in reversed(reading.transactions):
        if (tx.ship, tx.good, tx.type, tx.units) == (entry.ship, entry.good, kind, entry.units) \
                and tx.timestamp is not None and tx.timestamp >= entry.intended_at - CLOCK_SKEW \
                and tx.timestamp not in used:
            ledger.confirm(entry.id, units=tx.units, price_per_unit=tx.price_per_unit,
                           total=tx.total, credits_after=None, server_time=tx.timestamp,
                           now=now)
            log.info("recovery.confirmed", entry=entry.id, ship=entry.ship, good=entry.good,
                     units=tx.units, total=tx.total)
            return Settled(entry, "CONFIRMED")
    ledger.fail(entry.id, "not among the market's transactions: it did not happen", now)
    log.info("recovery.failed", entry=entry.id, ship=entry.ship, good=entry.good)
    return Settled(entry, "FAILED")


def settle_ledger(ledger: LedgerRepository, client: Client, agent: str, now: datetime,
                  ship: str | None = None) -> list[Settled]:
    return [settle_entry(ledger, client, e, now) for e in ledger.pending(agent, ship)]
