"""The one client the bot uses, against the real server and the local one alike."""

from __future__ import annotations

import functools
import json
import os
import random
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import requests
import structlog

from api.errors import (
    ApiError,
    Cancelled,
    OutcomeUnknown,
    ProtocolError,
    RetryableError,
    from_response,
)
from api.models import (
    Agent,
    Cargo,
    Construction,
    Contract,
    Fuel,
    MarketReading,
    Nav,
    Registration,
    Ship,
    ShipyardOffer,
    TradeResult,
    Transaction,
    Waypoint,
    items,
    number,
    parse_time,
    text,
)
from api.ratelimit import Priority, RateLimiter
from domain.markets import MarketSnapshot, system_of

DEFAULT_BASE_URL = "https://api.spacetraders.io/v2"
BASE_URL_ENV = "SPACETRADERS_BASE_URL"
TOKEN_ENV = "SPACETRADERS_TOKEN"
PAGE_LIMIT = 20
log = structlog.get_logger("api")
T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """How long to back off, and how often to try again.

    `base`/`cap` apply to 5xx answers, unreadable bodies, network errors and 429s that
    carry no `retry-after`. A 502 (the DDoS shield) pauses every thread of the process:
    `gateway_base` seconds, doubling with each 502 in a row up to `gateway_cap`, reset by
    any other answer; a read gives up after `max_gateway` of them in a row. A
    `retry-after` longer than `max_retry_after` is cut to it.
    """

    max_retries: int = 5
    max_throttled: int = 50
    max_gateway: int = 10
    base: float = 1.0
    cap: float = 60.0
    gateway_base: float = 2.0
    gateway_cap: float = 60.0
    max_retry_after: float = 60.0
    connect_timeout: float = 5.0
    read_timeout: float = 30.0

    def backoff(self, attempt: int, gateway: bool = False) -> float:
        """Exponential back-off with jitter: between three quarters and all of the step."""
        base, cap = (self.gateway_base, self.gateway_cap) if gateway else (self.base, self.cap)
        ceiling = min(cap, base * 2 ** max(0, attempt - 1))
        return ceiling * 0.75 + random.uniform(0, ceiling / 4)

    def gateway_worst_case(self, in_a_row: int) -> float:
        """The longest pause `in_a_row` 502s can cost (the README quotes it)."""
        return sum(min(self.gateway_cap, self.gateway_base * 2 ** i) for i in range(in_a_row))


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
        self._statuses: Counter[tuple[str, int]] = Counter()
        self._calls_lock = threading.Lock()

    def __repr__(self) -> str:  # never show the token
        return f"Client({self.base_url!r})"

    @property
    def calls(self) -> Counter[str]:
        """Requests sent so far, by endpoint name (retries included)."""
        with self._calls_lock:
            return Counter(self._calls)

    @property
    def statuses(self) -> Counter[tuple[str, int]]:
        """Answers received so far, by endpoint name and HTTP status."""
        with self._calls_lock:
            return Counter(self._statuses)

    def with_token(self, token: str) -> Client:
        """The same server, limiter and stop signal, as another agent."""
        return Client(self.base_url, token, self.limiter, self.policy, self.stop)

    def unstopped(self) -> Client:
        """The same agent with a stop signal of its own: for the last requests of a run
        whose own signal was set to stop its actors."""
        return Client(self.base_url, self._token, self.limiter, self.policy)

    # --- transport -----------------------------------------------------------------------

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.headers["Accept"] = "application/json"
            # Proxies and the CA bundle are read from the environment once per server, not
            # on every request (requests would re-read them each time) nor per thread.
            proxies, bundle = _environment(self.base_url)
            session.proxies.update(proxies)
            if bundle:
                session.verify = bundle
            session.trust_env = False
            self._local.session = session
        return session

    def _request(self, endpoint: str, method: str, path: str, parse: Callable[[Any], T], *,
                 body: dict | None = None, params: dict | None = None,
                 priority: Priority = Priority.READ, mutating: bool = False,
                 token: str | None = None) -> T:
        """Send one request and parse its answer, waiting for the rate limiter and retrying
        what is safe: a read through 5xx, unreadable bodies and network errors; a mutation
        only when it surely never reached the server."""
        what = f"{method} {path}"
        url = self.base_url + path
        headers = {}
        bearer = token or self._token
        if bearer:
            headers["Authorization"] = f"Bearer {bearer}"
        failures = throttled = gateway = 0
        while True:
            self.limiter.acquire(priority, self.stop)
            with self._calls_lock:
                self._calls[endpoint] += 1
            try:
                session = self._session()
                # prepared here rather than by session.request, which merges cookies,
                # hooks and settings this client never sets: a quarter of its CPU
                prepared = requests.PreparedRequest()
                prepared.prepare(method=method, url=url, headers={**session.headers, **headers},
                                 json=body, params=params)
                resp = session.send(prepared, timeout=(self.policy.connect_timeout,
                                                       self.policy.read_timeout))
                content = resp.content  # a truncated body fails here, as a network error
            except requests.RequestException as exc:
                if mutating and _maybe_sent(exc):
                    raise OutcomeUnknown(f"{what}: no answer ({type(exc).__name__}); it may "
                                         "have happened") from None
                failures += 1
                self._retry_or_raise(RetryableError(f"{what}: {type(exc).__name__}"),
                                     failures, self.policy.backoff(failures))
                continue
            with self._calls_lock:
                self._statuses[(endpoint, resp.status_code)] += 1
            self._observe_limits(resp)
            if resp.status_code != 502:
                self.limiter.answered()
            if resp.status_code < 400:
                try:
                    return parse(json.loads(content) if content else None)
                except (ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
                    problem = ProtocolError(what, f"{type(exc).__name__}: {exc}"[:120], content,
                                            status=resp.status_code)
                    if mutating:  # it was done; what it did must be read back, not redone
                        raise OutcomeUnknown(f"{problem}; it happened, but its result is "
                                             "unreadable", status=resp.status_code) from problem
                    failures += 1
                    self._retry_or_raise(problem, failures, self.policy.backoff(failures))
                    continue
            error = from_response(resp.status_code, _json(content), what)
            if resp.status_code == 429:
                throttled += 1
                if throttled > self.policy.max_throttled:
                    raise error
                self._throttled(path, _retry_after(resp), throttled)
                continue
            if resp.status_code >= 500:
                if mutating:
                    raise OutcomeUnknown(f"{what}: HTTP {resp.status_code}; it may have "
                                         "happened", status=resp.status_code,
                                         code=error.code) from error
                if resp.status_code == 502:
                    gateway += 1
                    if gateway > self.policy.max_gateway:
                        raise error
                    self._gateway_pause(path)
                    continue
                failures += 1
                self._retry_or_raise(error, failures, self.policy.backoff(failures))
                continue
            raise error

    def _throttled(self, path: str, retry_after: float | None, attempt: int) -> None:
        """A 429: wait what the server asks (capped), or back off if it does not say."""
        if retry_after is None:
            wait = self.policy.backoff(attempt)
        else:
            wait = min(retry_after, self.policy.max_retry_after)
        log.warning("api.throttled", path=path, retry_after=retry_after, wait=round(wait, 2),
                    capped=retry_after is not None and retry_after > wait, attempt=attempt)
        self.limiter.pause(wait)

    def _gateway_pause(self, path: str) -> None:
        """A 502 from the DDoS shield: everyone in the process backs off, longer each time."""
        streak = self.limiter.gateway_failed()
        wait = self.policy.backoff(streak, gateway=True)
        log.warning("api.backoff", path=path, status=502, in_a_row=streak, wait=round(wait, 2))
        self.limiter.pause(wait)

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

    def _get(self, endpoint: str, path: str, parse: Callable[[Any], T], **kw) -> T:
        """A GET whose `data` is parsed by `parse`."""
        return self._request(endpoint, "GET", path, lambda body: parse(_data(body)), **kw)

    def _post(self, endpoint: str, path: str, parse: Callable[[Any], T], body: dict | None = None,
              mutating: bool = False, method: str = "POST") -> T:
        """A ship or agent action (priority ACTION) whose `data` is parsed by `parse`."""
        return self._request(endpoint, method, path, lambda b: parse(_data(b)), body=body,
                             priority=Priority.ACTION, mutating=mutating)

    def _paged(self, endpoint: str, path: str, params: dict | None = None,
               priority: Priority = Priority.READ) -> list[dict]:
        found: list[dict] = []
        page = 1
        while True:
            batch, total = self._request(endpoint, "GET", path, _page, priority=priority,
                                         params={**(params or {}), "page": page,
                                                 "limit": PAGE_LIMIT})
            found.extend(batch)
            if not batch or len(found) >= total:
                return found
            page += 1

    # --- server and agent ----------------------------------------------------------------

    def status(self) -> dict:
        return self._request("status", "GET", "/", _status)

    def register(self, symbol: str, faction: str, account_token: str) -> Registration:
        return self._request("register", "POST", "/register",
                             lambda body: Registration.from_api(_data(body)),
                             body={"symbol": symbol, "faction": faction},
                             priority=Priority.ACTION, mutating=True, token=account_token)

    def agent(self) -> Agent:
        return self._get("agent", "/my/agent", Agent.from_api)

    def supply_chain(self) -> dict[str, list[str]]:
        return self._get("supply_chain", "/market/supply-chain", _supply_chain)

    # --- fleet ---------------------------------------------------------------------------

    def ships(self) -> list[Ship]:
        return [Ship.from_api(s) for s in self._paged("ships", "/my/ships")]

    def ship(self, symbol: str) -> Ship:
        return self._get("ship", f"/my/ships/{symbol}", Ship.from_api)

    def nav(self, symbol: str) -> Nav:
        return self._get("nav", f"/my/ships/{symbol}/nav", Nav.from_api)

    def cargo(self, symbol: str) -> Cargo:
        return self._get("cargo", f"/my/ships/{symbol}/cargo", Cargo.from_api)

    def cooldown(self, symbol: str) -> dict | None:
        return self._request("cooldown", "GET", f"/my/ships/{symbol}/cooldown",
                             lambda body: None if body is None else _object(_data(body)))

    def orbit(self, symbol: str) -> Nav:
        return self._post("orbit", f"/my/ships/{symbol}/orbit", lambda d: Nav.from_api(d["nav"]))

    def dock(self, symbol: str) -> Nav:
        return self._post("dock", f"/my/ships/{symbol}/dock", lambda d: Nav.from_api(d["nav"]))

    def navigate(self, symbol: str, waypoint: str) -> tuple[Nav, Fuel]:
        return self._post("navigate", f"/my/ships/{symbol}/navigate",
                          lambda d: (Nav.from_api(d["nav"]), Fuel.from_api(d["fuel"])),
                          body={"waypointSymbol": waypoint}, mutating=True)

    def set_flight_mode(self, symbol: str, mode: str) -> Nav:
        # before 2025-02 the body was the nav itself
        return self._post("flight_mode", f"/my/ships/{symbol}/nav",
                          lambda d: Nav.from_api(d.get("nav", d)), body={"flightMode": mode},
                          method="PATCH")

    def refuel(self, symbol: str, units: int | None = None) -> TradeResult:
        body = {} if units is None else {"units": units}
        return self._post("refuel", f"/my/ships/{symbol}/refuel", TradeResult.from_api,
                          body=body, mutating=True)

    def purchase(self, symbol: str, good: str, units: int) -> TradeResult:
        return self._post("purchase", f"/my/ships/{symbol}/purchase", TradeResult.from_api,
                          body={"symbol": good, "units": units}, mutating=True)

    def sell(self, symbol: str, good: str, units: int) -> TradeResult:
        return self._post("sell", f"/my/ships/{symbol}/sell", TradeResult.from_api,
                          body={"symbol": good, "units": units}, mutating=True)

    def jettison(self, symbol: str, good: str, units: int) -> Cargo:
        return self._post("jettison", f"/my/ships/{symbol}/jettison",
                          lambda d: Cargo.from_api(d["cargo"]),
                          body={"symbol": good, "units": units}, mutating=True)

    def transfer(self, symbol: str, good: str, units: int, to_ship: str) -> Cargo:
        return self._post("transfer", f"/my/ships/{symbol}/transfer",
                          lambda d: Cargo.from_api(d["cargo"]),
                          body={"tradeSymbol": good, "units": units, "shipSymbol": to_ship},
                          mutating=True)

    def purchase_ship(self, ship_type: str, waypoint: str) -> tuple[Ship, int, int]:
        """Buy a ship; returns it, its price and the credits left."""
        return self._post("purchase_ship", "/my/ships",
                          lambda d: (Ship.from_api(d["ship"]), number(d["transaction"], "price"),
                                     number(d["agent"], "credits")),
                          body={"shipType": ship_type, "waypointSymbol": waypoint},
                          mutating=True)

    # --- systems and markets -------------------------------------------------------------

    def system(self, system: str) -> dict:
        return self._get("system", f"/systems/{system}", _object)

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
        return self._get("waypoint", path, Waypoint.from_api)

    def market(self, waypoint: str, priority: Priority = Priority.REFRESH) -> MarketReading:
        path = f"/systems/{system_of(waypoint)}/waypoints/{waypoint}/market"
        return self._get("market", path, _market_reading, priority=priority)

    # --- construction sites and contracts -------------------------------------------------

    def construction(self, waypoint: str) -> Construction:
        path = f"/systems/{system_of(waypoint)}/waypoints/{waypoint}/construction"
        return self._get("construction", path, Construction.from_api)

    def supply_construction(self, ship: str, waypoint: str, good: str,
                            units: int) -> tuple[Construction, Cargo]:
        path = f"/systems/{system_of(waypoint)}/waypoints/{waypoint}/construction/supply"
        return self._post("supply", path, lambda d: (Construction.from_api(d["construction"]),
                                                     Cargo.from_api(d["cargo"])),
                          body={"shipSymbol": ship, "tradeSymbol": good, "units": units},
                          mutating=True)

    def contracts(self) -> list[Contract]:
        return [Contract.from_api(c) for c in self._paged("contracts", "/my/contracts")]

    def contract(self, contract_id: str) -> Contract:
        return self._get("contract", f"/my/contracts/{contract_id}", Contract.from_api)

    def accept_contract(self, contract_id: str) -> tuple[Contract, int]:
        """Accept; returns the contract and the agent's credits after the advance."""
        return self._post("accept", f"/my/contracts/{contract_id}/accept",
                          lambda d: (Contract.from_api(d["contract"]),
                                     number(d["agent"], "credits")), mutating=True)

    def deliver_contract(self, contract_id: str, ship: str, good: str,
                         units: int) -> tuple[Contract, Cargo]:
        return self._post("deliver", f"/my/contracts/{contract_id}/deliver",
                          lambda d: (Contract.from_api(d["contract"]),
                                     Cargo.from_api(d["cargo"])),
                          body={"shipSymbol": ship, "tradeSymbol": good, "units": units},
                          mutating=True)

    def fulfill_contract(self, contract_id: str) -> tuple[Contract, int]:
        """Fulfil; returns the contract and the agent's credits after the payment."""
        return self._post("fulfill", f"/my/contracts/{contract_id}/fulfill",
                          lambda d: (Contract.from_api(d["contract"]),
                                     number(d["agent"], "credits")), mutating=True)

    def shipyard(self, waypoint: str) -> list[ShipyardOffer]:
        path = f"/systems/{system_of(waypoint)}/waypoints/{waypoint}/shipyard"
        return self._get("shipyard", path, _shipyard)


@functools.cache
def _environment(base_url: str) -> tuple[dict[str, str], str | None]:
    """The proxies for `base_url` and the CA bundle the environment names."""
    return (requests.utils.get_environ_proxies(base_url),
            os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE"))


def _maybe_sent(exc: requests.RequestException) -> bool:
    """False only when the request surely never left: no connection was made."""
    if isinstance(exc, requests.ConnectTimeout):
        return False
    if isinstance(exc, requests.ConnectionError):
        reason = getattr(exc.args[0], "reason", None) if exc.args else None
        return not isinstance(reason, requests.urllib3.exceptions.NewConnectionError)
    return True


def _json(content: bytes) -> object:
    try:
        return json.loads(content)
    except ValueError:
        return None


def _object(value: Any) -> dict:
    if not isinstance(value, dict):
        raise TypeError(f"expected an object, not {type(value).__name__}")
    return value


def _data(body: Any) -> Any:
    """The `data` of a `{"data": ...}` envelope."""
    return _object(body)["data"]


def _page(body: Any) -> tuple[list[dict], int]:
    found = _object(body)["data"]
    if not isinstance(found, list) or not all(isinstance(i, dict) for i in found):
        raise TypeError("a page's data must be a list of objects")
    return found, number(_object(body["meta"]), "total")


def _status(body: Any) -> dict:
    text(_object(body), "status")
    return body


def _supply_chain(data: Any) -> dict[str, list[str]]:
    found = _object(_object(data)["exportToImportMap"])
    if not all(isinstance(v, list) for v in found.values()):
        raise TypeError("exportToImportMap values must be lists")
    return found


def _market_reading(data: Any) -> MarketReading:
    snapshot = MarketSnapshot.from_api(_object(data), observed_at=datetime.now(UTC))
    return MarketReading(snapshot, tuple(Transaction.from_api(t)
                                         for t in items(data, "transactions")))


def _shipyard(data: Any) -> list[ShipyardOffer]:
    prices = {text(s, "type"): s.get("purchasePrice") for s in items(_object(data), "ships")}
    return [ShipyardOffer(text(t, "type"), prices.get(t["type"]))
            for t in items(data, "shipTypes")]


def _retry_after(resp: requests.Response) -> float | None:
    """Whole seconds from the `retry-after` header, if it carries a number."""
    raw = resp.headers.get("retry-after")
    try:
        return max(0.0, float(raw)) if raw is not None else None
    except ValueError:
        return None

