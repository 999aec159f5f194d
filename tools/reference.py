"""Fetch the official SpaceTraders OpenAPI spec at the commit the tests were written
against, check every file against its pinned SHA-256, and keep it in a cache directory the
tests also read (for a clone without the `shared` folder beside it):

    python -m tools.reference [--dest DIR]

The spec's licence forbids copying it, so it is never committed nor packaged: only its
hashes are (tools/reference.sha256.json).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path

COMMIT = "45fbb04130aca3fa0bd9a634ab77b35fa6c468ab"  # SpaceTradersAPI/api-docs, 2025-04-28
RAW = f"https://raw.githubusercontent.com/SpaceTradersAPI/api-docs/{COMMIT}/"
SPEC_DIR = "spacetraders-api"
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "goods-factory"
HASHES = Path(__file__).with_name("reference.sha256.json")


def pinned() -> dict[str, str]:
    """Path inside the repository → SHA-256 of the file at the pinned commit."""
    return json.loads(HASHES.read_text())


def verify(root: Path) -> list[str]:
    """The files under `root` that are missing or differ from the pinned ones."""
    bad = []
    for name, digest in pinned().items():
        path = root / name
        if not path.is_file() or hashlib.sha256(path.read_bytes()).hexdigest() != digest:
            bad.append(name)
    return bad


def fetch(dest: Path, get=None) -> None:
    """Download every pinned file into `dest`, refusing any whose hash differs."""
    import requests

    get = get or (lambda url: requests.get(url, timeout=30))
    for name, digest in pinned().items():
        resp = get(RAW + name)
        resp.raise_for_status()
        if hashlib.sha256(resp.content).hexdigest() != digest:
            raise SystemExit(f"{name}: the downloaded file does not match its pinned hash")
        path = dest / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(resp.content)


def main(argv: list[str] | None = None) -> int:
    args = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    args.add_argument("--dest", type=Path, default=CACHE / SPEC_DIR)
    opts = args.parse_args(argv)
    if not verify(opts.dest):
        print(f"{opts.dest}: the pinned spec is already there")
        return 0
    try:
        fetch(opts.dest)
    except Exception as exc:  # one line, whatever went wrong
        print(f"could not fetch the spec: {exc}", file=sys.stderr)
        return 1
    print(f"{opts.dest}: {len(pinned())} files fetched and checked")
    return 0


if __name__ == "__main__":
    sys.exit(main())
