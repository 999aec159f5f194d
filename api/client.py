"""The one client the bot uses, against the real server and the local one alike."""

from __future__ import annotations

import os
import random
import threading
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import requests
import structlog

from api.errors import (
    ApiError,
    Cancelled,
    OutcomeUnknown,
    RetryableError,
    from_response,
)
from api.models import (
    Agent,
    Cargo,
    Fuel,
    MarketReading,
    Nav,
    Registration,
    Ship,
    ShipyardOffer,
    TradeResult,
    Transaction,
    Waypoint,
    parse_time,
)
from api.ratelimit import Priority, RateLimiter
from domain.markets import MarketSnapshot, system_of

DEFAULT_BASE_URL = "https://api.spacetraders.io/v2"
BASE_URL_ENV = "SPACETRADERS_BASE_URL"
TOKEN_ENV = "SPACETRADERS_TOKEN"
PAGE_LIMIT = 20
log = structlog.get_logger("api")


@dataclass(frozen=True)
class RetryPolicy:
    """How long to back off, and how often to try again.

    `base`/`cap` apply to 5xx answers, network errors and 429s that carry no
    `retry-after`; a 502 (the DDoS shield) backs off for minutes (`gateway_*`).
    """

    max_retries: int = 5
    max_throttled: int = 50
    base: float = 1.0
    cap: float = 60.0
    gateway_base: float = 30.0
    gateway_cap: float = 300.0
    connect_timeout: float = 5.0
    read_timeout: float = 30.0

    def backoff(self, attempt: int, gateway: bool = False) -> float:
        """Exponential back-off with jitter: half fixed, half random."""
        base, cap = (self.gateway_base, self.gateway_cap) if gateway else (self.base, self.cap)
        ceiling = min(cap, base * 2 ** max(0, attempt - 1))
        return ceiling / 2 + random.uniform(0, ceiling / 2)


class Client:
    def __init__(self, base_url: str | None = None, token: str | None = None,
                 limiter: RateLimiter | None = None, policy: RetryPolicy | None = None,
                 stop: threading.Event | None = None):
        self.base_url = (base_url or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL
                         ).rstrip("/")
        self._token = token if token is not None else os.environ.get(TOKEN_ENV)
        self.limiter = limiter or RateLimiter()
        self.policy = policy or RetryPolicy()
        self.stop = stop or threading.Event()
        self._local = threading.local()
        self._calls: Counter[str] = Counter()
        self._calls_lock = threading.Lock()

    def __repr__(self) -> str:  # never show the token
        return f"Client({self.base_url!r})"

    @property
    def calls(self) -> Counter[str]:
        """Requests sent so far, by endpoint name (retries included)."""
        with self._calls_lock:
            return Counter(self._calls)

    def with_token(self, token: str) -> Client:
        """The same server, limiter and stop signal, as another agent."""
        return Client(self.base_url, token, self.limiter, self.policy, self.stop)

    # --- transport -----------------------------------------------------------------------

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.headers["Accept"] = "application/json"
            self._local.session = session
        return session

    def _request(self, endpoint: str, method: str, path: str, *, body: dict | None = None,
                 params: dict | None = None, priority: Priority = Priority.READ,
                 mutating: bool = False, token: str | None = None) -> Any:
        """Send one request, waiting for the rate limiter and retrying what is safe."""
        what = f"{method} {path}"
        url = self.base_url + path
        headers = {}
        bearer = token or self._token
        if bearer:
            headers["Authorization"] = f"Bearer {bearer}"
        failures = throttled = 0
        while True:
            self.limiter.acquire(priority, self.stop)
            with self._calls_lock:
                self._calls[endpoint] += 1
            try:
                resp = self._session().request(
                    method, url, json=body, params=params, headers=headers,
                    timeout=(self.policy.connect_timeout, self.policy.read_timeout))
            except requests.RequestException as exc:
                if mutating and _maybe_sent(exc):
                    raise OutcomeUnknown(f"{what}: no answer ({type(exc).__name__}); it may "
                                         "have happened") from None
                failures += 1
                self._retry_or_raise(RetryableError(f"{what}: {type(exc).__name__}"),
                                     failures, self.policy.backoff(failures))
                continue
            self._observe_limits(resp)
            if resp.status_code < 400:
                return resp.json() if resp.content else None
            error = from_response(resp.status_code, _json(resp), what)
            if resp.status_code == 429:
                throttled += 1
                retry_after = _retry_after(resp)
                if throttled > self.policy.max_throttled:
                    raise error
                wait = retry_after if retry_after is not None else self.policy.backoff(throttled)
                log.warning("api.throttled", path=path, retry_after=retry_after, wait=wait,
                            attempt=throttled)
                self.limiter.pause(wait)
                continue
            if resp.status_code >= 500:
                if mutating:
                    raise OutcomeUnknown(f"{what}: HTTP {resp.status_code}; it may have "
                                         "happened", status=resp.status_code,
                                         code=error.code) from error
                failures += 1
                gateway = resp.status_code == 502
                wait = self.policy.backoff(failures, gateway=gateway)
                if gateway:
                    self.limiter.pause(wait)
                self._retry_or_raise(error, failures, wait)
                continue
            raise error

    def _retry_or_raise(self, error: ApiError, failures: int, wait: float) -> None:
        if failures > self.policy.max_retries:
            raise error
        log.warning("api.retry", error=str(error), attempt=failures, wait=round(wait, 2))
        if self.stop.wait(wait):
            raise Cancelled(f"stopped while retrying: {error}") from error

    def _observe_limits(self, resp: requests.Response) -> None:
        """Another process on this account may have used the pools: trust the server."""
        if resp.headers.get("x-ratelimit-remaining") == "0":
            reset = parse_time(resp.headers.get("x-ratelimit-reset"))
            if reset is not None:
                wait = (reset - datetime.now(UTC)).total_seconds()
                if 0 < wait <= 60:
                    self.limiter.pause(wait)

    def _paged(self, endpoint: str, path: str, params: dict | None = None,
               priority: Priority = Priority.READ) -> list[dict]:
        items: list[dict] = []
        page = 1
        while True:
            body = self._request(endpoint, "GET", path, priority=priority,
                                 params={**(params or {}), "page": page, "limit": PAGE_LIMIT})
            items.extend(body["data"])
            if not body["data"] or len(items) >= body["meta"]["total"]:
                return items
            page += 1

    # --- server and agent ----------------------------------------------------------------

    def status(self) -> dict:
        return self._request("status", "GET", "/")

    def register(self, symbol: str, faction: str, account_token: str) -> Registration:
        data = self._request("register", "POST", "/register",
                             body={"symbol": symbol, "faction": faction},
                             priority=Priority.ACTION, mutating=True,
                             token=account_token)["data"]
        return Registration(data["token"], Agent.from_api(data["agent"]),
                            tuple(Ship.from_api(s) for s in data["ships"]))

    def agent(self) -> Agent:
        return Agent.from_api(self._request("agent", "GET", "/my/agent")["data"])

    def supply_chain(self) -> dict[str, list[str]]:
        data = self._request("supply_chain", "GET", "/market/supply-chain")["data"]
        return data["exportToImportMap"]

    # --- fleet ---------------------------------------------------------------------------

    def ships(self) -> list[Ship]:
        return [Ship.from_api(s) for s in self._paged("ships", "/my/ships")]

    def ship(self, symbol: str) -> Ship:
        return Ship.from_api(self._request("ship", "GET", f"/my/ships/{symbol}")["data"])

    def nav(self, symbol: str) -> Nav:
        return Nav.from_api(self._request("nav", "GET", f"/my/ships/{symbol}/nav")["data"])

    def cargo(self, symbol: str) -> Cargo:
        return Cargo.from_api(self._request("cargo", "GET", f"/my/ships/{symbol}/cargo")["data"])

    def cooldown(self, symbol: str) -> dict | None:
        body = self._request("cooldown", "GET", f"/my/ships/{symbol}/cooldown")
        return body["data"] if body else None

    def orbit(self, symbol: str) -> Nav:
        data = self._request("orbit", "POST", f"/my/ships/{symbol}/orbit",
                             priority=Priority.ACTION)["data"]
        return Nav.from_api(data["nav"])

    def dock(self, symbol: str) -> Nav:
        data = self._request("dock", "POST", f"/my/ships/{symbol}/dock",
                             priority=Priority.ACTION)["data"]
        return Nav.from_api(data["nav"])

    def navigate(self, symbol: str, waypoint: str) -> tuple[Nav, Fuel]:
        data = self._request("navigate", "POST", f"/my/ships/{symbol}/navigate",
                             body={"waypointSymbol": waypoint}, priority=Priority.ACTION,
                             mutating=True)["data"]
        return Nav.from_api(data["nav"]), Fuel.from_api(data["fuel"])

    def set_flight_mode(self, symbol: str, mode: str) -> Nav:
        data = self._request("flight_mode", "PATCH", f"/my/ships/{symbol}/nav",
                             body={"flightMode": mode}, priority=Priority.ACTION)["data"]
        return Nav.from_api(data.get("nav", data))  # before 2025-02 the body was the nav

    def refuel(self, symbol: str, units: int | None = None) -> TradeResult:
        body = {} if units is None else {"units": units}
        data = self._request("refuel", "POST", f"/my/ships/{symbol}/refuel", body=body,
                             priority=Priority.ACTION, mutating=True)["data"]
        return TradeResult.from_api(data)

    def purchase(self, symbol: str, good: str, units: int) -> TradeResult:
        data = self._request("purchase", "POST", f"/my/ships/{symbol}/purchase",
                             body={"symbol": good, "units": units}, priority=Priority.ACTION,
                             mutating=True)["data"]
        return TradeResult.from_api(data)

    def sell(self, symbol: str, good: str, units: int) -> TradeResult:
        data = self._request("sell", "POST", f"/my/ships/{symbol}/sell",
                             body={"symbol": good, "units": units}, priority=Priority.ACTION,
                             mutating=True)["data"]
        return TradeResult.from_api(data)

    def jettison(self, symbol: str, good: str, units: int) -> Cargo:
        data = self._request("jettison", "POST", f"/my/ships/{symbol}/jettison",
                             body={"symbol": good, "units": units}, priority=Priority.ACTION,
                             mutating=True)["data"]
        return Cargo.from_api(data["cargo"])

    def transfer(self, symbol: str, good: str, units: int, to_ship: str) -> Cargo:
        data = self._request("transfer", "POST", f"/my/ships/{symbol}/transfer",
                             body={"tradeSymbol": good, "units": units, "shipSymbol": to_ship},
                             priority=Priority.ACTION, mutating=True)["data"]
        return Cargo.from_api(data["cargo"])

    def purchase_ship(self, ship_type: str, waypoint: str) -> tuple[Ship, int, int]:
        """Buy a ship; returns it, its price and the credits left."""
        data = self._request("purchase_ship", "POST", "/my/ships",
                             body={"shipType": ship_type, "waypointSymbol": waypoint},
                             priority=Priority.ACTION, mutating=True)["data"]
        return (Ship.from_api(data["ship"]), int(data["transaction"]["price"]),
                int(data["agent"]["credits"]))

    # --- systems and markets -------------------------------------------------------------

    def system(self, system: str) -> dict:
        return self._request("system", "GET", f"/systems/{system}")["data"]

    def waypoints(self, system: str, type_: str | None = None,
                  traits: list[str] | None = None) -> list[Waypoint]:
        params: dict = {}
        if type_:
            params["type"] = type_
        if traits:
            params["traits"] = traits
        items = self._paged("waypoints", f"/systems/{system}/waypoints", params,
                            Priority.REFRESH)
        return [Waypoint.from_api(w) for w in items]

    def waypoint(self, waypoint: str) -> Waypoint:
        path = f"/systems/{system_of(waypoint)}/waypoints/{waypoint}"
        return Waypoint.from_api(self._request("waypoint", "GET", path)["data"])

    def market(self, waypoint: str, priority: Priority = Priority.REFRESH) -> MarketReading:
        path = f"/systems/{system_of(waypoint)}/waypoints/{waypoint}/market"
        data = self._request("market", "GET", path, priority=priority)["data"]
        snapshot = MarketSnapshot.from_api(data, observed_at=datetime.now(UTC))
        return MarketReading(snapshot, tuple(Transaction.from_api(t)
                                             for t in data.get("transactions") or ()))

    def shipyard(self, waypoint: str) -> list[ShipyardOffer]:
        path = f"/systems/{system_of(waypoint)}/waypoints/{waypoint}/shipyard"
        data = self._request("shipyard", "GET", path)["data"]
        prices = {s["type"]: s.get("purchasePrice") for s in data.get("ships") or ()}
        return [ShipyardOffer(t["type"], prices.get(t["type"])) for t in data["shipTypes"]]


def _maybe_sent(exc: requests.RequestException) -> bool:
    """False only when the request surely never left: no connection was made."""
    if isinstance(exc, requests.ConnectTimeout):
        return False
    if isinstance(exc, requests.ConnectionError):
        reason = getattr(exc.args[0], "reason", None) if exc.args else None
        return not isinstance(reason, requests.urllib3.exceptions.NewConnectionError)
    return True


def _json(resp: requests.Response) -> object:
    try:
        return resp.json()
    except ValueError:
        return None


def _retry_after(resp: requests.Response) -> float | None:
    raw = resp.headers.get("retry-after")
    try:
        return max(0.0, float(raw)) if raw is not None else None
    except ValueError:
        return None

