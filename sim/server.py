"""The simulator's HTTP front: real paths under /v2, envelopes, rate limits and faults."""

from __future__ import annotations

import itertools
import json
import re
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from domain.supply_chain import SupplyChain
from sim.economy import DEFAULT_ECONOMY, ECONOMIES
from sim.faults import AFTER, FaultPlan
from sim.game import STARTING_CREDITS, Game, SimClock, SimError, iso
from sim.ratelimit import TwoPoolLimiter
from sim.universe import Universe, generate_universe, load_universe
from storage.files import default_supply_chain, trade_goods

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
SHIP = r"/my/ships/(?P<ship>[^/]+)"
WAYPOINT = r"/systems/(?P<system>[^/]+)/waypoints/(?P<waypoint>[^/]+)"
CONTRACT = r"/my/contracts/(?P<contract>[^/]+)"



@dataclass(frozen=True)
class Exchange:
    """One request and its answer, as the server saw them (for tests and benchmarks)."""

    method: str
    path: str  # as requested, without /v2 and the query
    spec_path: str  # the spec's template, e.g. /my/ships/{shipSymbol}/orbit
    query: dict
    status: int
    request: dict | None
    response: dict | None


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern
    spec_path: str
    auth: str  # "agent", "account" or "optional"
    handler: Callable


def _page(items: list, query: dict) -> tuple[list, dict]:
    try:
        page = int(query.get("page", ["1"])[0])
        limit = int(query.get("limit", ["10"])[0])
    except ValueError:
        raise SimError(422, 422, "Request could not be processed due to an invalid payload.",
                       {"page": ["page and limit must be integers."]}) from None
    if page < 1 or not 1 <= limit <= 20:
        raise SimError(422, 422, "Request could not be processed due to an invalid payload.",
                       {"limit": ["page must be >= 1 and limit between 1 and 20."]})
    start = (page - 1) * limit
    return items[start:start + limit], {"total": len(items), "page": page, "limit": limit}


def _cooldown(game: Game, agent, match, query, body):
    """Ships here never extract or jump, so no cooldown is ever running: 204."""
    game.ship(agent, match["ship"])
    return 204, None, None


def _routes() -> list[Route]:
    def r(method, path, spec, auth, handler):
        return Route(method, re.compile(f"^{path}$"), spec, auth, handler)

    s = "/my/ships/{shipSymbol}"
    w = "/systems/{systemSymbol}/waypoints/{waypointSymbol}"
    c = "/my/contracts/{contractId}"
    return [
        r("GET", "/", "/", "optional", lambda g, a, m, q, b: (200, g.status(), None)),
        r("POST", "/register", "/register", "account",
          lambda g, a, m, q, b: (201, g.register(b), None)),
        r("GET", "/my/agent", "/my/agent", "agent",
          lambda g, a, m, q, b: (200, g.agent_payload(a), None)),
        r("GET", "/my/ships", "/my/ships", "agent",
          lambda g, a, m, q, b: (200, *_page(g.list_ships(a), q))),
        r("POST", "/my/ships", "/my/ships", "agent",
          lambda g, a, m, q, b: (201, g.purchase_ship(a, b), None)),
        r("GET", SHIP, s, "agent",
          lambda g, a, m, q, b: (200, g.ship_payload(g.ship(a, m["ship"])), None)),
        r("POST", SHIP + "/orbit", s + "/orbit", "agent",
          lambda g, a, m, q, b: (200, g.orbit(a, m["ship"]), None)),
        r("POST", SHIP + "/dock", s + "/dock", "agent",
          lambda g, a, m, q, b: (200, g.dock(a, m["ship"]), None)),
        r("POST", SHIP + "/navigate", s + "/navigate", "agent",
          lambda g, a, m, q, b: (200, g.navigate(a, m["ship"], b), None)),
        r("PATCH", SHIP + "/nav", s + "/nav", "agent",
          lambda g, a, m, q, b: (200, g.set_flight_mode(a, m["ship"], b), None)),
        r("GET", SHIP + "/nav", s + "/nav", "agent",
          lambda g, a, m, q, b: (200, g.nav_payload(g.ship(a, m["ship"])), None)),
        r("POST", SHIP + "/refuel", s + "/refuel", "agent",
          lambda g, a, m, q, b: (200, g.refuel(a, m["ship"], b), None)),
        r("POST", SHIP + "/purchase", s + "/purchase", "agent",
          lambda g, a, m, q, b: (201, g.purchase(a, m["ship"], b), None)),
        r("POST", SHIP + "/sell", s + "/sell", "agent",
          lambda g, a, m, q, b: (201, g.sell(a, m["ship"], b), None)),
        r("POST", SHIP + "/jettison", s + "/jettison", "agent",
          lambda g, a, m, q, b: (200, g.jettison(a, m["ship"], b), None)),
        r("POST", SHIP + "/transfer", s + "/transfer", "agent",
          lambda g, a, m, q, b: (200, g.transfer(a, m["ship"], b), None)),
        r("GET", SHIP + "/cargo", s + "/cargo", "agent",
          lambda g, a, m, q, b: (200, g.cargo_payload(g.ship(a, m["ship"])), None)),
        r("GET", SHIP + "/cooldown", s + "/cooldown", "agent", _cooldown),
        r("GET", r"/systems/(?P<system>[^/]+)", "/systems/{systemSymbol}", "optional",
          lambda g, a, m, q, b: (200, g.system(m["system"]), None)),
        r("GET", r"/systems/(?P<system>[^/]+)/waypoints", "/systems/{systemSymbol}/waypoints",
          "optional", lambda g, a, m, q, b: (200, *_page(
              g.waypoints(m["system"], (q.get("type") or [None])[0], q.get("traits", [])), q))),
        r("GET", WAYPOINT, w, "optional",
          lambda g, a, m, q, b: (200, g.waypoint(m["system"], m["waypoint"]), None)),
        r("GET", WAYPOINT + "/market", w + "/market", "optional",
          lambda g, a, m, q, b: (200, g.market(a, m["system"], m["waypoint"]), None)),
        r("GET", WAYPOINT + "/shipyard", w + "/shipyard", "optional",
          lambda g, a, m, q, b: (200, g.shipyard(a, m["system"], m["waypoint"]), None)),
        r("GET", "/market/supply-chain", "/market/supply-chain", "agent",
          lambda g, a, m, q, b: (200, g.supply_chain(), None)),
        r("GET", WAYPOINT + "/construction", w + "/construction", "optional",
          lambda g, a, m, q, b: (200, g.construction(m["system"], m["waypoint"]), None)),
        r("POST", WAYPOINT + "/construction/supply", w + "/construction/supply", "agent",
          lambda g, a, m, q, b: (201, g.supply_construction(a, m["system"], m["waypoint"], b),
                                 None)),
        r("GET", "/my/contracts", "/my/contracts", "agent",
          lambda g, a, m, q, b: (200, *_page(g.list_contracts(a), q))),
        r("GET", CONTRACT, c, "agent",
          lambda g, a, m, q, b: (200, g.contract(a, m["contract"]).payload(), None)),
        r("POST", CONTRACT + "/accept", c + "/accept", "agent",
          lambda g, a, m, q, b: (200, g.accept_contract(a, m["contract"]), None)),
        r("POST", CONTRACT + "/deliver", c + "/deliver", "agent",
          lambda g, a, m, q, b: (200, g.deliver_contract(a, m["contract"], b), None)),
        r("POST", CONTRACT + "/fulfill", c + "/fulfill", "agent",
          lambda g, a, m, q, b: (200, g.fulfill_contract(a, m["contract"]), None)),
        r("POST", SHIP + "/negotiate/contract", s + "/negotiate/contract", "agent",
          lambda g, a, m, q, b: (201, g.negotiate_contract(a, m["ship"]), None)),
    ]


ROUTES = _routes()


class SimServer:
    """The simulator on a loopback port; usable in-process (`with SimServer(game) as url`)."""

    def __init__(self, game: Game, host: str = "127.0.0.1", port: int = 0,
                 rate_limit: bool | TwoPoolLimiter = True, faults: FaultPlan | None = None,
                 on_exchange: Callable[[Exchange], None] | None = None,
                 on_kill: Callable[[], None] | None = None):
        if host not in LOOPBACK:
            raise ValueError(f"the simulator binds to loopback only, not {host}")
        self.game = game
        self.faults = faults or FaultPlan()
        if isinstance(rate_limit, TwoPoolLimiter):
            self.limiter: TwoPoolLimiter | None = rate_limit
        else:
            self.limiter = TwoPoolLimiter() if rate_limit else None
        self.throttled = 0  # requests the rate limit refused (faults not counted)
        self.on_exchange = on_exchange
        self.on_kill = on_kill  # a drill's hook: kill the bot at an aimed instant
        self.kills = 0
        self.request_ids = itertools.count(1)
        handler = type("Handler", (_Handler,), {"sim": self})
        self._httpd = _Server((host, port), handler)
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v2"

    def start(self) -> str:
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="sim-http",
                                        kwargs={"poll_interval": 0.1}, daemon=True)
        self._thread.start()
        return self.url

    def serve_forever(self) -> None:
        self._httpd.serve_forever(poll_interval=0.2)

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread:
            self._thread.join(timeout=5)

    def kill(self) -> None:
        """Run the drill's kill hook (it returns once the bot is dead)."""
        if self.on_kill is not None:
            self.kills += 1
            self.on_kill()

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class _Server(ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:
        """A client that hung up (a drill killed it) is not the server's error."""
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    sim: SimServer
    protocol_version = "HTTP/1.1"
    server_version = "goods-factory-sim"
    disable_nagle_algorithm = True  # headers and body go out at once, not 40 ms apart

    def log_message(self, format, *args):  # requests are not worth a line each
        pass

    def do_GET(self):
        self._serve("GET")

    def do_POST(self):
        self._serve("POST")

    def do_PATCH(self):
        self._serve("PATCH")

    def do_PUT(self):
        self._serve("PUT")

    def do_DELETE(self):
        self._serve("DELETE")

    def _serve(self, method: str) -> None:
        sim, game = self.sim, self.sim.game
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        path = parts.path[3:] if parts.path.startswith("/v2") else None
        route, match = _find(method, path)
        self._exchange = (method, path or parts.path,
                          route.spec_path if route else parts.path, parse_qs(parts.query))
        body = None
        delay = sim.faults.delay()
        if delay:
            time.sleep(delay)
        fault = sim.faults.draw(parts.path)
        if fault in ("429", "429bare", "500", "502"):
            return self._fault(fault)
        action = _action(method, path or parts.path)
        seen = sim.faults.count(action)
        if sim.faults.kill_now("before", action, seen):
            sim.kill()
        try:
            if route is None:
                raise SimError(404, 404, f"Route {method} {parts.path} not found.")
            body = _json_body(raw) if method in ("POST", "PATCH") else None
            token = _bearer(self.headers.get("Authorization"))
            with game.lock:
                agent = None
                if route.auth == "account":
                    game.check_account(token)
                elif route.auth == "agent" or token:
                    agent = game.agent_for(token)
            verdict = self._rate_limit(agent)
            if verdict is not None and not verdict.allowed:
                return self._throttled(verdict, body)
            with game.lock:
                status, data, meta = route.handler(game, agent, match, parse_qs(parts.query),
                                                   body or {})
                if method == "POST" and "ship" in match:
                    lost = sim.faults.ship_to_lose(match["ship"], path.rsplit("/", 1)[-1])
                    if lost:
                        game.lose_ship(lost)
        except SimError as err:
            return self._send(err.status, err.body(), body)
        if sim.faults.kill_now("after", action, seen):
            sim.kill()  # processed; the bot dies before it learns the answer
        if fault in AFTER:
            return self._garbled(fault, status, body)
        if route.spec_path == "/":
            payload = data
        else:
            payload = {"data": data} if meta is None else {"data": data, "meta": meta}
        self._send(status, payload if status != 204 else None, body,
                   headers=self._limit_headers(verdict))

    def _rate_limit(self, agent):
        limiter = self.sim.limiter
        if limiter is None:
            return None
        keys = {"IP Address": self.client_address[0]}
        if agent is not None:
            keys["Account"] = agent.symbol
        return limiter.take(keys)

    def _limit_headers(self, verdict) -> dict:
        if verdict is None:
            return {}
        return {"x-ratelimit-type": verdict.type,
                "x-ratelimit-limit": str(verdict.per_second),
                "x-ratelimit-remaining": str(verdict.remaining),
                "x-ratelimit-reset": iso(time.time() + verdict.reset_in),
                "x-ratelimit-limit-burst": str(verdict.burst),
                "x-ratelimit-limit-per-second": str(verdict.per_second)}

    def _throttled(self, verdict, body) -> None:
        self.sim.throttled += 1
        headers = {**self._limit_headers(verdict), "retry-after": str(verdict.retry_after)}
        payload = {"error": {"message": "You have reached your API limit.", "code": 429,
                             "data": {"type": verdict.type, "retryAfter": verdict.retry_after,
                                      "limitBurst": verdict.burst,
                                      "limitPerSecond": verdict.per_second, "remaining": 0,
                                      "reset": headers["x-ratelimit-reset"]}}}
        self._send(429, payload, body, headers)

    def _fault(self, fault: str) -> None:
        if fault == "429":
            verdict_headers = {"x-ratelimit-type": "Account", "x-ratelimit-limit": "2",
                               "x-ratelimit-remaining": "0",
                               "x-ratelimit-reset": iso(time.time() + 1),
                               "x-ratelimit-limit-burst": "30",
                               "x-ratelimit-limit-per-second": "2", "retry-after": "1"}
            payload = {"error": {"message": "You have reached your API limit.", "code": 429,
                                 "data": {"type": "Account", "retryAfter": 1, "limitBurst": 30,
                                          "limitPerSecond": 2, "remaining": 0,
                                          "reset": verdict_headers["x-ratelimit-reset"]}}}
            return self._send(429, payload, None, verdict_headers)
        if fault == "429bare":
            self._record(429, None, None)
            return self._send_raw(429, b"Too Many Requests", "text/plain")
        if fault == "500":
            payload = {"error": {"message": "The server did not return a valid response. "
                                 "Please try again later.", "code": 3000,
                                 "requestId": f"sim-{next(self.sim.request_ids)}"}}
            return self._send(500, payload, None)
        self._record(502, None, None)
        return self._send_raw(502, b"<html><body>502 Bad Gateway</body></html>", "text/html")

    def _garbled(self, fault: str, status: int, request_body: dict | None) -> None:
        """The request was processed; its answer is lost or mangled on the way back."""
        if fault == "500after":
            return self._fault("500")
        self._record(status, request_body, None)
        if fault == "html":
            return self._send_raw(200, b"<!DOCTYPE html><html><body>Maintenance</body></html>",
                                  "text/html")
        if fault == "badjson":
            return self._send_raw(status, b'{"data": {"agent": {"symbol": ', "application/json")
        if fault == "shape":
            return self._send_raw(status, b'{"data": [{"unexpected": true}]}',
                                  "application/json")
        body = b'{"data": {"padding": "' + b"x" * 200 + b'"}}'
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[:len(body) // 2])
        self.wfile.flush()
        self.close_connection = True

    def _record(self, status: int, request_body: dict | None, payload: dict | None) -> None:
        if self.sim.on_exchange is not None:
            self.sim.on_exchange(Exchange(*self._exchange, status, request_body, payload))

    def _send(self, status: int, payload: dict | None, request_body: dict | None,
              headers: dict | None = None) -> None:
        self._record(status, request_body, payload)
        raw = b"" if payload is None else json.dumps(payload).encode()
        self._send_raw(status, raw, "application/json", headers)

    def _send_raw(self, status: int, raw: bytes, content_type: str,
                  headers: dict | None = None) -> None:
        self.send_response(status)
        if raw:
            self.send_header("Content-Type", f"{content_type}; charset=utf-8")
        self.send_header("Content-Length", str(len(raw)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        try:
            self.end_headers()
            if raw:
                self.wfile.write(raw)
        except (BrokenPipeError, ConnectionResetError):  # the caller is gone (a drill)
            self.close_connection = True


def _find(method: str, path: str | None):
    if path is None:
        return None, None
    for route in ROUTES:
        if route.method == method:
            m = route.pattern.match(path or "/")
            if m:
                return route, m.groupdict()
    return None, None


def _action(method: str, path: str) -> str:
    """What a fault plan calls a request: `purchase`, `ships`, `get-market`, …"""
    last = path.rstrip("/").rsplit("/", 1)[-1] or "status"
    return f"get-{last}" if method == "GET" else last


def _bearer(header: str | None) -> str | None:
    if header and header.lower().startswith("bearer "):
        return header[7:].strip() or None
    return None


def _json_body(raw: bytes) -> dict:
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise SimError(422, 422, "Request could not be processed due to an invalid payload.",
                       {"body": ["The request body must be a JSON object."]})
    return body


def build_game(seed: int = 1, universe_dir: str | Path | None = None,
               time_scale: float = 1.0, now=time.time, chain: SupplyChain | None = None,
               account_token: str | None = None, starting_credits: int = STARTING_CREDITS,
               economy: str = DEFAULT_ECONOMY.name) -> Game:
    """A game on a generated universe (from `seed`) or a captured one (`universe_dir`),
    whose markets follow the named economy profile (sim.economy.ECONOMIES)."""
    chain = chain or default_supply_chain()
    if economy not in ECONOMIES:
        raise ValueError(f"unknown economy {economy!r} (known: {', '.join(ECONOMIES)})")
    profile = ECONOMIES[economy]
    universe: Universe = (load_universe(universe_dir, chain, profile) if universe_dir
                          else generate_universe(seed, chain, economy=profile))
    return Game(universe, chain, SimClock(time_scale, now), trade_goods(), account_token,
                starting_credits)
