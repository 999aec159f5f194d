"""Kill drills aimed at the dangerous instants, checked against the server's books.

    python bench/drill.py [--db PATH_OR_URL] [--rounds 3] [--seed 1] [--target CLOTHING]

The simulator runs in this process and the bot in child processes. Each child gets a
fault plan that makes the simulator SIGKILL it at one chosen instant: right after a
purchase, a sale, a refuel, a navigation or a ship purchase was processed and before the
bot could write down the answer; between two purchases of one task; right after a
`resume` took a factory over. The drill keeps running `produce` (or `resume`, when a
factory is open) until it has made the kills it was asked for, then resumes until every
factory has ended, and checks what the server says happened:

- every factory completed;
- the ledger has no open entry, and its trades are the server's trades, one for one;
- no task bought more than its lot, and everything bought was delivered (the product is
  sold at a market that imports it): nothing is left stranded in a hold;
- the ledger's credits are the server's.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from api.client import Client
from api.ratelimit import RateLimiter
from domain.factory import FactoryStatus
from sim.faults import FaultPlan
from sim.server import SimServer, build_game
from storage.db import open_database
from storage.repositories import Storage

ROOT = Path(__file__).resolve().parents[1]
# What each instant's fault plan is; {n} is drawn per run.
INSTANTS = {
    "after a purchase": "kill=purchase:{n}",
    "after a sale": "kill=sell:{n}",
    "after a refuel": "kill=refuel:{n}",
    "after a navigation": "kill=navigate:{n}",
    "between two purchases": "killbefore=purchase:{n}",
    "after a take-over": "kill=get-ships:1",
}
SHIP_PURCHASE = "after a ship purchase"


@dataclass
class Report:
    kills: Counter = field(default_factory=Counter)  # instant -> kills really made
    runs: int = 0
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)
    factories: list[str] = field(default_factory=list)


class Drill:
    def __init__(self, db: str, seed: int = 1, time_scale: float = 250.0,
                 economy: str = "gentle", log_dir: Path | None = None):
        self.db = db
        self.rng = random.Random(seed)
        self.game = build_game(seed=seed, time_scale=time_scale, economy=economy,
                               starting_credits=2_000_000)
        self.proc: subprocess.Popen | None = None
        self.lock = threading.Lock()
        self.server = SimServer(self.game, rate_limit=False, on_kill=self._kill)
        self.server.start()
        anon = Client(self.server.url, token="", limiter=RateLimiter.unlimited())
        reg = anon.register("DRILL", "COSMIC", "account")
        self.token, self.agent = reg.token, reg.agent.symbol
        self.log_dir = log_dir or Path(tempfile.mkdtemp(prefix="gf-drill-"))
        self.yard = self.game.universe.start_probe_at
        self.last = ""

    def close(self) -> None:
        self.server.stop()

    def _kill(self) -> None:
        """The simulator's hook: the bot dies at this instant, before it hears back."""
        with self.lock:
            proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)

    def spawn(self, *args: str, faults: str = "") -> int:
        """Run one command as a child with `faults` aimed at it; its exit code (and, in
        `self.last`, what it said last: an error or the outcome)."""
        self.server.faults = FaultPlan.parse(faults)
        env = {**os.environ, "SPACETRADERS_BASE_URL": self.server.url,
               "SPACETRADERS_TOKEN": self.token, "GOODS_FACTORY_DB": self.db,
               "GOODS_FACTORY_RATE_LIMIT": "none", "GOODS_POLL_INTERVAL_INITIAL": "0.3",
               "GOODS_POLL_INTERVAL_SETTLED": "0.6"}
        path = self.log_dir / f"run{time.monotonic_ns()}.log"
        with open(path, "w") as log:
            with self.lock:
                self.proc = subprocess.Popen([sys.executable, "-m", "cli", "--log-format",
                                              "json", *args], cwd=ROOT, env=env, stdout=log,
                                             stderr=log)
            code = self.proc.wait(600)
        said = [line for line in path.read_text().splitlines()
                if '"error"' in line or '"factory.outcome"' in line or "Traceback" in line]
        self.last = f"{' '.join(args)} [{faults}] -> {code}: {said[-1][:300] if said else ''}"
        return code

    def open_factories(self) -> bool:
        storage = Storage(open_database(self.db))
        try:
            return bool(storage.factories.open_ids(self.agent))
        finally:
            storage.close()

    def run(self, target: str, rounds: int = 1, ship_purchase: bool = True,
            units: int | None = None) -> Report:
        """Aim `rounds` kills at every instant, then finish everything and check it."""
        report = Report()
        started = time.monotonic()
        if ship_purchase:
            for _ in range(rounds):
                before = self.server.kills
                code = self.spawn("buy-ship", "SHIP_LIGHT_SHUTTLE", "--at", self.yard,
                                  faults="kill=ships:1")
                report.runs += 1
                if self.server.kills > before and code == -signal.SIGKILL:
                    report.kills[SHIP_PURCHASE] += 1
        todo = [instant for instant in INSTANTS for _ in range(rounds)]
        self.rng.shuffle(todo)
        for attempt in range(40 * max(1, len(todo))):
            if not todo:
                break
            instant = todo[0]
            resuming = self.open_factories()
            if instant == "after a take-over" and not resuming:
                todo.append(todo.pop(0))
                if all(i == "after a take-over" for i in todo) and attempt:
                    args = self._produce(target, units)
                    self.spawn(*args, faults="kill=purchase:2")  # leave one open to take
                    report.runs += 1
                continue
            faults = INSTANTS[instant].format(n=self.rng.randint(1, 3))
            before = self.server.kills
            code = self.spawn(*(["resume"] if resuming else self._produce(target, units)),
                              faults=faults)
            report.runs += 1
            if self.server.kills > before and code == -signal.SIGKILL:
                report.kills[instant] += 1
                todo.pop(0)
            elif code not in (0, -signal.SIGKILL):
                report.problems.append(f"a run failed: {self.last}")
                if len(report.problems) >= 3:
                    break
        for _ in range(10):  # then let every factory finish
            if not self.open_factories():
                break
            if self.spawn("resume") not in (0, -signal.SIGKILL):
                report.problems.append(f"a run failed: {self.last}")
            report.runs += 1
        report.seconds = time.monotonic() - started
        report.problems += self.check(report)
        return report

    def _produce(self, target: str, units: int | None) -> list[str]:
        """A factory whose product is sold at a market that imports it, lot by lot, so
        that the holds never fill up across factories."""
        buyer = next(w for w, m in sorted(self.game.universe.markets.items())
                     if target in m.goods and m.goods[target].type.value == "IMPORT")
        return ["produce", target, "--deliver", f"sell:{buyer}",
                *(["--units", str(units)] if units else [])]

    def check(self, report: Report) -> list[str]:
        """What the server's books say, against the ledger and the factories."""
        problems = []
        storage = Storage(open_database(self.db))
        try:
            ledger = storage.ledger
            for summary in storage.factories.list(self.agent):
                report.factories.append(summary.id)
                if summary.status is not FactoryStatus.COMPLETED:
                    problems.append(f"{summary.id} is {summary.status.value}: {summary.error}")
                factory = storage.factories.load(summary.id)
                for task in factory.tasks.values():
                    if task.units_bought - task.units_lost > task.units_target:
                        problems.append(f"{task.id} bought {task.units_bought} for a lot of "
                                        f"{task.units_target}")
                    if task.units_held:
                        problems.append(f"{task.id} left {task.units_held} {task.good} in a "
                                        "hold")
            if ledger.pending(self.agent):
                problems.append(f"{len(ledger.pending(self.agent))} ledger entries still open")
            server = Counter()
            for e in self.game.books:
                if e.agent == self.agent and e.kind != "CONTRACT":
                    server[(e.kind, e.good, e.units)] += 1
            ours = Counter()
            for e in ledger.entries(agent=self.agent, state="CONFIRMED"):
                if e.kind in ("PURCHASE", "SELL", "REFUEL", "SHIP", "SUPPLY", "DELIVER"):
                    ours[(e.kind, e.good, e.units)] += 1
            if server != ours:
                problems.append(f"trades differ: the server has {dict(server - ours)} more, "
                                f"the ledger {dict(ours - server)} more")
            credits = self.game.agents[self.agent].credits
            expected = ledger.expected_credits(self.agent)
            if expected != credits:
                problems.append(f"the ledger says {expected} credits, the server {credits}")
            for ship in self.game.agents[self.agent].ships:
                for good, units in self.game.ships[ship].cargo.items():
                    problems.append(f"{ship} carries {units} {good}, stranded")
        finally:
            storage.close()
        return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", help="database path or postgresql:// URL [a temporary file]")
    parser.add_argument("--rounds", type=int, default=3, help="kills aimed at each instant")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--target", default="CLOTHING")
    parser.add_argument("--units", type=int, help="produce this many units per factory")
    args = parser.parse_args()
    db = args.db or str(Path(tempfile.mkdtemp(prefix="gf-drill-")) / "drill.db")
    drill = Drill(db, seed=args.seed)
    try:
        report = drill.run(args.target, rounds=args.rounds, units=args.units)
    finally:
        drill.close()
    print(f"database: {db}\nruns: {report.runs}, factories: {len(report.factories)}, "
          f"{report.seconds:.0f} s")
    for instant in [SHIP_PURCHASE, *INSTANTS]:
        print(f"  kills {instant}: {report.kills[instant]}")
    print("problems:" if report.problems else "problems: none")
    for problem in report.problems:
        print(f"  {problem}")
    sys.exit(1 if report.problems else 0)


if __name__ == "__main__":
    main()
