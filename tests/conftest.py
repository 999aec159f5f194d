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


PG_ENV = "GOODS_FACTORY_TEST_PG"
PG_DEFAULT = "postgresql://postgres@127.0.0.1:5432/postgres"


@pytest.fixture(scope="session")
def pg_database():
    """A throw-away PostgreSQL database for the session. Never skipped: if PostgreSQL is
    not there, the tests that need it fail and say so."""
    import os
    import uuid
    from urllib.parse import urlsplit

    import psycopg2

    admin_url = os.environ.get(PG_ENV, PG_DEFAULT)
    name = f"gf_test_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg2.connect(admin_url, connect_timeout=5)
    except psycopg2.OperationalError as exc:
        pytest.fail(f"PostgreSQL is required for these tests ({PG_ENV}={admin_url}): {exc}")
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    url = urlsplit(admin_url)._replace(path=f"/{name}").geturl()
    yield url
    with admin.cursor() as cur:
        cur.execute(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    f"WHERE datname = '{name}' AND pid <> pg_backend_pid()")
        cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
    admin.close()


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request, tmp_path):
    """The same test against a fresh SQLite file and a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        return str(tmp_path / "goods-factory.db")
    import psycopg2

    url = request.getfixturevalue("pg_database")
    conn = psycopg2.connect(url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    conn.close()
    return url


@pytest.fixture
def store(db_url):
    from storage.db import open_database
    from storage.repositories import Storage

    storage = Storage(open_database(db_url))
    yield storage
    storage.close()
