"""systemd's notification protocol: READY, STOPPING and the watchdog.

A dozen lines over a datagram socket (sd_notify(3)); a library would add a C build or
an unmaintained package for no gain. Outside a unit (no NOTIFY_SOCKET) nothing happens.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable


def notify(state: str) -> bool:
    """Send `state` (e.g. "READY=1") to systemd; False when not under a notify unit, or
    when the message could not go at once (a full or missing socket never blocks us)."""
    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        return False
    if path.startswith("@"):  # an abstract socket
        path = "\0" + path[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        try:
            sock.connect(path)
            sock.send(state.encode())
        except OSError:
            return False
    return True


def watchdog(clock: Callable[[], float] = time.monotonic) -> Callable[[], None] | None:
    """A function to call while all is well: it pings systemd's watchdog at half its
    interval. None when the unit has no watchdog (WatchdogSec)."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    interval = int(usec) / 1e6 / 2
    last = [float("-inf")]

    def feed() -> None:
        now = clock()
        if now - last[0] >= interval:
            last[0] = now
            notify("WATCHDOG=1")

    return feed
