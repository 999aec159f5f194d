"""One thread that sends every registered actor a Tick at a steady interval.

Actors never sleep to wait for time to pass: they are told when it has.
"""

from __future__ import annotations

import threading

import pykka

from actors.messages import Tick


class Ticker:
    def __init__(self, interval: float = 1.0):
        self.interval = interval
        self._refs: list[pykka.ActorRef] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ticker", daemon=True)

    def add(self, ref: pykka.ActorRef) -> None:
        with self._lock:
            self._refs.append(ref)

    def remove(self, ref: pykka.ActorRef) -> None:
        with self._lock:
            if ref in self._refs:
                self._refs.remove(ref)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stopping.wait(self.interval):
            with self._lock:
                refs = list(self._refs)
            for ref in refs:
                try:
                    ref.tell(Tick())
                except pykka.ActorDeadError:
                    self.remove(ref)
