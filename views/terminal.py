"""`status --watch`: the tree refreshed in place on a terminal (rich's Live display, which
redraws only what changed and restores the screen on exit), plain text elsewhere."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime

from rich.console import Console
from rich.live import Live
from rich.text import Text

from domain.report import render_status
from storage.repositories import Storage


def watch_status(storage: Storage, factory_id: str, every: float, *,
                 console: Console | None = None, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 rounds: int | None = None) -> None:
    """Show the factory until it has finished (or Ctrl-C); `rounds` bounds the refreshes."""
    console = console or Console()

    def frame() -> tuple[str, bool]:
        factory = storage.factories.load(factory_id)
        return render_status(factory, clock()), factory.status.finished

    text, finished = frame()
    count = 1
    try:
        if not console.is_terminal:  # a pipe or a file: each change once, as plain text
            console.print(text, markup=False, highlight=False, soft_wrap=True)
            while not finished and (rounds is None or count < rounds):
                sleep(every)
                new, finished = frame()
                count += 1
                if new != text:
                    text = new
                    console.print("\n" + text, markup=False, highlight=False, soft_wrap=True)
            return
        with Live(Text(text), console=console, auto_refresh=False,
                  vertical_overflow="visible") as live:
            while not finished and (rounds is None or count < rounds):
                sleep(every)
                text, finished = frame()
                count += 1
                live.update(Text(text), refresh=True)
    except KeyboardInterrupt:
        sys.stdout.write("\n")
