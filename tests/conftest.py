from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
DATA = SHARED / "spacetraders-data"


@pytest.fixture(scope="session")
def shared() -> Path:
    if not SHARED.is_dir():
        pytest.fail(f"the reference material is missing: expected it at {SHARED}")
    return SHARED


class Raw:
    """Bare HTTP against the simulator, for tests of the server itself."""

    def __init__(self, url: str, token: str | None = None):
        import requests

        self.url, self.token = url, token
        self.session = requests.Session()

    def call(self, method: str, path: str, json=None, token=..., **params):
        """`token=None` (or "") sends no Authorization header; omitted, the agent's."""
        token = self.token if token is ... else token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return self.session.request(method, self.url + path, json=json, headers=headers,
                                    params=params or None, timeout=10)

    def get(self, path, **kw):
        return self.call("GET", path, **kw)

    def post(self, path, json=None, **kw):
        return self.call("POST", path, json=json, **kw)

    def register(self, symbol: str = "TESTER", faction: str = "COSMIC") -> dict:
        r = self.post("/register", {"symbol": symbol, "faction": faction}, token="account")
        assert r.status_code == 201, r.text
        data = r.json()["data"]
        self.token = data["token"]
        return data


@pytest.fixture
def sim_factory():
    """Start simulators in-process; each is stopped at teardown."""
    from sim.server import SimServer, build_game

    servers = []

    def start(seed=1, time_scale=1000.0, rate_limit=False, faults=None, record=None,
              universe_dir=None, now=None):
        import time as _time

        game = build_game(seed=seed, time_scale=time_scale, universe_dir=universe_dir,
                          now=now or _time.time)
        server = SimServer(game, rate_limit=rate_limit, faults=faults,
                           on_exchange=record.append if record is not None else None)
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
