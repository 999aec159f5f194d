"""The ship actors of the process, and what happens when one dies.

Each ship gets one actor, started on its first job. An actor that dies on a bug is
replaced by a fresh one for the ship's next job: its worker starts from the server's view
of the ship and the settled ledger, like any other. The coordinator whose job was running
is told (`ShipCrashed`) and hands the task out again, counting an attempt. A ship whose
actor dies `max_restarts` times is benched: this process stops using it, and says why.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable

import pykka
import structlog

from actors.messages import Job, RunJob, ShipCrashed
from actors.ship import ShipActor, ShipWorker
from actors.watcher import Directory

log = structlog.get_logger("pool")


class ShipPool:
    def __init__(self, make_worker: Callable[[str], ShipWorker], directory: Directory,
                 max_restarts: int = 3):
        self.make_worker = make_worker
        self.directory = directory
        self.max_restarts = max_restarts
        self._lock = threading.Lock()
        self._actors: dict[str, tuple[pykka.ActorRef, ShipWorker]] = {}
        self.crashes: Counter[str] = Counter()
        self.benched: dict[str, str] = {}

    def dispatch(self, ship: str, job: Job) -> bool:
        """Hand `job` to the ship's actor; False if the ship is benched."""
        with self._lock:
            if ship in self.benched:
                return False
            ref = self._actor(ship)
        try:
            ref.tell(RunJob(job))
        except pykka.ActorDeadError:  # died between the check and the tell: once more
            with self._lock:
                ref = self._actor(ship)
            ref.tell(RunJob(job))
        return True

    def _actor(self, ship: str) -> pykka.ActorRef:
        found = self._actors.get(ship)
        if found is not None and found[0].is_alive():
            return found[0]
        worker = self.make_worker(ship)
        ref = ShipActor.start(worker, self.directory, self._crashed)
        self._actors[ship] = (ref, worker)
        return ref

    def _crashed(self, ship: str, job: Job | None, error: str) -> None:
        """Called from the dying actor's thread."""
        with self._lock:
            self.crashes[ship] += 1
            benched = self.crashes[ship] >= self.max_restarts
            if benched:
                self.benched[ship] = f"its actor died {self.crashes[ship]} times: {error}"
        log.error("ship.crashed", ship=ship, error=error, crashes=self.crashes[ship],
                  benched=benched, task=job.task if job else None)
        if job is not None:
            self.directory.tell(job.factory, ShipCrashed(ship, job, error, benched))

    def worker(self, ship: str) -> ShipWorker | None:
        found = self._actors.get(ship)
        return found[1] if found else None

    def cancel(self, ship: str, soft: bool = False) -> None:
        """Abandon the ship's job now, or (soft) let it deliver what it holds but buy
        nothing more."""
        worker = self.worker(ship)
        if worker is not None:
            (worker.finish if soft else worker.cancel).set()

    def stop_all(self, timeout: float = 10.0) -> list[str]:
        """Stop every actor; returns the ships whose actor did not stop in time."""
        stuck = []
        for ship, (ref, _) in list(self._actors.items()):
            try:
                ref.stop(timeout=timeout)
            except pykka.Timeout:
                stuck.append(ship)
            except pykka.ActorDeadError:
                pass
        return stuck
