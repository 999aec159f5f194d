"""Helpers shared by the benchmarks: a simulator in a child process, and table printing."""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@contextmanager
def sim_process(*args: str):
    """`goods-factory sim serve` in a child process, so the bot's CPU time is its own."""
    proc = subprocess.Popen([sys.executable, "-m", "cli", "sim", "serve", "--port", "0", *args],
                            cwd=ROOT, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stderr.readline()
        match = re.search(r"(http://127\.0\.0\.1:\d+/v2)", line)
        if not match:
            raise RuntimeError(f"simulator did not start: {line}{proc.stderr.read()}")
        yield match.group(1)
    finally:
        proc.terminate()
        proc.wait(10)
        proc.stderr.close()


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    return f"{platform.node()}: {os.cpu_count()} cores, {cpu}, Python {platform.python_version()}"


def table(headers: list[str], rows: list[list]) -> str:
    cells = [[str(c) for c in row] for row in [headers, *rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = [" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)
