"""After a crash: settle the ledger's open entries against what the server says happened.

Every purchase, sale, refuel, delivery, contract step and ship purchase is written
INTENDED before it is sent, with what the ship held just before. If the process died
before writing CONFIRMED, the server decides: first the market's recent transactions
(visible while the ship is still there), which carry the exact bill; failing that, the
ship's own hold (or tank, or the fleet, or the contract), which says whether it happened;
failing that too (the ship is gone), the agent's balance, when nothing else is open to
explain a difference. It is then confirmed, or marked FAILED; nothing is ever sent again
blindly. An entry
confirmed without a bill is priced at its quote, and the agent's balance is read again
(when no other trade is in flight) so the ledger still adds up to the server's credits.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog

from api.client import Client
from api.errors import ApiError, NotFoundError
from api.models import Ship
from api.ratelimit import Priority
from storage.repositories import LedgerRecord, LedgerRepository

CLOCK_SKEW = timedelta(seconds=30)
log = structlog.get_logger("recovery")


@dataclass(frozen=True)
class Settled:
    entry: LedgerRecord
    outcome: str  # CONFIRMED, FAILED or UNKNOWN (left open: nothing to decide by)
    estimated: bool = False  # confirmed without the server's bill


def settle_entry(ledger: LedgerRepository, client: Client, entry: LedgerRecord,
                 now: datetime, ship: Ship | None = None) -> Settled:
    """Decide one INTENDED entry. `ship` is the ship as the server reports it now."""
    seen = False
    if entry.kind in ("PURCHASE", "SELL", "REFUEL"):
        found, seen = _from_transactions(ledger, client, entry, now)
        if found is not None:
            return found
    try:
        happened = _evidence(client, entry, ship)
    except NotFoundError:  # the ship is gone: only the balance can tell
        happened = _from_balance(ledger, client, entry) \
            if entry.kind in ("PURCHASE", "SELL", "REFUEL") else None
    if happened is None and seen and entry.held_before is None:
        happened = False  # an entry from before cargo evidence: the transactions decide
    if happened is None:
        log.warning("recovery.undecided", entry=entry.id, kind=entry.kind, ship=entry.ship)
        return Settled(entry, "UNKNOWN")
    if not happened:
        ledger.fail(entry.id, "the server shows it did not happen", now)
        log.info("recovery.failed", entry=entry.id, kind=entry.kind, ship=entry.ship,
                 good=entry.good)
        return Settled(entry, "FAILED")
    price = entry.price_hint or 0
    ledger.confirm(entry.id, units=entry.units, price_per_unit=price,
                   total=price * entry.units if entry.kind != "CONTRACT" else price,
                   credits_after=None, server_time=None, now=now)
    log.info("recovery.confirmed", entry=entry.id, kind=entry.kind, ship=entry.ship,
             good=entry.good, units=entry.units, estimated=True)
    return Settled(entry, "CONFIRMED", estimated=True)


def _from_transactions(ledger: LedgerRepository, client: Client, entry: LedgerRecord,
                       now: datetime) -> tuple[Settled | None, bool]:
    """The entry confirmed by its bill among the market's recent transactions, if there;
    and whether the transactions could be seen at all."""
    try:
        reading = client.market(entry.waypoint, priority=Priority.ACTION)
    except ApiError as exc:
        log.warning("recovery.unreadable", entry=entry.id, error=str(exc))
        return None, False
    if not reading.snapshot.has_quotes:  # no ship there: the transactions are hidden
        return None, False
    kind = "SELL" if entry.kind == "SELL" else "PURCHASE"
    used = ledger.matched_server_times(entry.ship)
    for tx in reversed(reading.transactions):
        if (tx.ship, tx.good, tx.type, tx.units) == (entry.ship, entry.good, kind, entry.units) \
                and tx.timestamp is not None and tx.timestamp >= entry.intended_at - CLOCK_SKEW \
                and tx.timestamp not in used:
            ledger.confirm(entry.id, units=tx.units, price_per_unit=tx.price_per_unit,
                           total=tx.total, credits_after=None, server_time=tx.timestamp,
                           now=now)
            log.info("recovery.confirmed", entry=entry.id, kind=entry.kind, ship=entry.ship,
                     good=entry.good, units=tx.units, total=tx.total)
            return Settled(entry, "CONFIRMED"), True
    return None, True


def _evidence(client: Client, entry: LedgerRecord, ship: Ship | None) -> bool | None:
    """Whether the server shows the entry happened; None when it cannot tell. Raises
    NotFoundError when the ship (or contract) is gone."""
    before = entry.held_before
    try:
        if entry.kind == "CONTRACT":
            contract = client.contract(entry.good)
            return contract.fulfilled if entry.units else contract.accepted
        if before is None:
            return None
        if entry.kind == "SHIP":
            return len(client.ships()) > before
        ship = ship or client.ship(entry.ship)
    except NotFoundError:
        raise  # the caller asks the balance instead
    except ApiError as exc:
        log.warning("recovery.unreadable", entry=entry.id, error=str(exc))
        return None
    if entry.kind == "REFUEL":  # the tank only fills by refuelling while it stands
        return ship.fuel.current > before
    held = ship.cargo.held(entry.good)
    if held == before + (entry.units if entry.kind == "PURCHASE" else -entry.units):
        return True
    return False if held == before else None


def _from_balance(ledger: LedgerRepository, client: Client, entry: LedgerRecord
                  ) -> bool | None:
    """Whether the agent's credits show the trade of a ship that is gone: the balance the
    ledger accounts for, against the server's. Only when it is the agent's one open entry
    (nothing else could explain a difference) and the difference is none or exactly the
    quoted price; anything else stays undecided."""
    if [e.id for e in ledger.pending(entry.agent)] != [entry.id] or entry.price_hint is None:
        return None
    expected = ledger.expected_credits(entry.agent)
    if expected is None:
        return None
    try:
        credits = client.agent().credits
    except ApiError as exc:
        log.warning("recovery.unreadable", entry=entry.id, error=str(exc))
        return None
    moved = entry.price_hint * entry.units
    if credits == expected:
        return False
    if credits == expected + (moved if entry.kind == "SELL" else -moved):
        return True
    return None


def settle_ledger(ledger: LedgerRepository, client: Client, agent: str, now: datetime,
                  ship: str | None = None, state: Ship | None = None,
                  may: Callable[[LedgerRecord], bool] = lambda entry: True) -> list[Settled]:
    """Settle every open entry (of one ship, if given) that `may` allows (an entry of a
    process still running is its own business); re-read the balance if any was
    confirmed without its bill."""
    settled = [settle_entry(ledger, client, e, now, state)
               for e in ledger.pending(agent, ship) if may(e)]
    if any(s.estimated for s in settled):
        try:  # not while another trade is in flight: the balance would miscount it
            if not ledger.record_balance_when_quiet(agent, lambda: client.agent().credits,
                                                    now):
                log.warning("recovery.estimated", agent=agent)  # keep the quote
        except ApiError as exc:
            log.warning("recovery.balance_unread", error=str(exc))
    return settled
