from __future__ import annotations

import os
from pathlib import Path

import pytest

from tools.reference import CACHE, SPEC_DIR

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("GOODS_FACTORY_SHARED") or ROOT.parent / "shared")
DATA = SHARED / "spacetraders-data"
# the official spec: beside the project, or where `python -m tools.reference` put it
SPEC = SHARED / SPEC_DIR if (SHARED / SPEC_DIR).is_dir() else CACHE / SPEC_DIR
REQUIRE_REFERENCE = "GOODS_FACTORY_REQUIRE_REFERENCE"


def missing_reference() -> str | None:
    """Why the reference material cannot be used, or None when it is all there."""
    if not DATA.is_dir():
        return (f"the captured game data is not at {DATA}: clone the project beside its "
                "`shared` folder")
    if not SPEC.is_dir():
        return (f"the official spec is not at {SHARED / SPEC_DIR}: run `python -m "
                "tools.reference` to fetch it (pinned and checked) into " + str(CACHE))
    return None


def pytest_runtest_setup(item: pytest.Item) -> None:
    """A test of the reference material skips, with how to get it, when it is missing;
    CI sets GOODS_FACTORY_REQUIRE_REFERENCE=1 so that missing material fails instead."""
    if item.get_closest_marker("reference") is None:
        return
    reason = missing_reference()
    if reason is None:
        return
    if os.environ.get(REQUIRE_REFERENCE) == "1":
        pytest.fail(f"{reason} ({REQUIRE_REFERENCE}=1)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def shared() -> Path:
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
    """A throw-away PostgreSQL database for the session. Without a server the tests that
    need it skip and say how to point them at one, unless GOODS_FACTORY_TEST_PG names the
    server (CI does): then they fail."""
    import os
    import uuid
    from urllib.parse import urlsplit

    import psycopg2

    admin_url = os.environ.get(PG_ENV) or PG_DEFAULT
    name = f"gf_test_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg2.connect(admin_url, connect_timeout=5)
    except psycopg2.OperationalError as exc:
        if os.environ.get(PG_ENV):
            pytest.fail(f"PostgreSQL is required for these tests ({PG_ENV}={admin_url}): "
                        f"{exc}")
        pytest.skip(f"no PostgreSQL at {admin_url}: set {PG_ENV} to a server's URL to run "
                    "these tests against it")
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
