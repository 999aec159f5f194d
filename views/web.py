"""`goods-factory web`: a read-only dashboard over the database, so it shows the factories
of any process (SQLite or PostgreSQL), and a Prometheus `/metrics` endpoint.

Flask routes the few JSON endpoints the page polls; waitress serves them (a small,
well-kept pure-Python WSGI server, where Flask's own is for development only). The page
draws its charts with Chart.js, vendored under views/static with its licence, so nothing
is fetched from a network at run time.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from flask import Flask, abort, jsonify, send_from_directory
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from domain.enums import SupplyLevel
from domain.factory import DeliverKind, Factory
from domain.report import render_status, status_dict
from storage.models import LedgerEntry, MarketHistory, ShipPosition, WaypointRow
from storage.repositories import Storage, from_db
from views.metrics import DatabaseCollector

STATIC = Path(__file__).with_name("static")
LEVELS = {level.name: i for i, level in enumerate(SupplyLevel, start=1)}


def create_app(storage: Storage, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
               ) -> Flask:
    app = Flask(__name__, static_folder=None)
    registry = CollectorRegistry()
    registry.register(DatabaseCollector(storage, clock))

    def load(factory_id: str) -> Factory:
        try:
            return storage.factories.load(factory_id)
        except KeyError:
            abort(404, f"no factory {factory_id}")

    @app.get("/")
    def index():
        return send_from_directory(STATIC, "index.html")

    @app.get("/static/<path:name>")
    def static(name: str):
        return send_from_directory(STATIC, name)

    @app.get("/api/factories")
    def factories():
        return jsonify([r.to_dict() for r in storage.factories.list()])

    @app.get("/api/factories/<factory_id>")
    def factory(factory_id: str):
        f, now = load(factory_id), clock()
        return jsonify({"status": status_dict(f, now), "text": render_status(f, now)})

    @app.get("/api/factories/<factory_id>/map")
    def system_map(factory_id: str):
        f = load(factory_id)
        return jsonify(map_data(f, clock()))

    @app.get("/api/factories/<factory_id>/charts")
    def charts(factory_id: str):
        summary = storage.factories.summary(factory_id)
        return jsonify(chart_data(load(factory_id), summary.agent if summary else ""))

    @app.get("/metrics")
    def metrics():
        return generate_latest(registry), 200, {"Content-Type": CONTENT_TYPE_LATEST}

    return app


def tree_markets(f: Factory) -> set[str]:
    """The markets the factory buys at, feeds or sells to."""
    out = {n.waypoint for n in (f.plan.flatten() if f.plan else []) if n.waypoint}
    for t in f.tasks.values():
        out.add(t.source)
        if t.destination:
            out.add(t.destination)
    return out


def map_data(f: Factory, now: datetime) -> dict:
    """Waypoints of the factory's system, the markets of its tree, and each ship where
    it is, or along its route at `now` while it flies."""
    waypoints = {w.symbol: w for w in WaypointRow.select().where(WaypointRow.system == f.system)}
    ships = []
    for s in ShipPosition.select().where(ShipPosition.system == f.system):
        here, there = waypoints.get(s.origin or s.waypoint), waypoints.get(s.waypoint)
        if there is None:
            continue
        x, y, progress = there.x, there.y, 1.0
        if s.status == "IN_TRANSIT" and here is not None and s.departure and s.arrival:
            total = (from_db(s.arrival) - from_db(s.departure)).total_seconds()
            done = (now - from_db(s.departure)).total_seconds()
            progress = min(1.0, max(0.0, done / total)) if total > 0 else 1.0
            x = here.x + (there.x - here.x) * progress
            y = here.y + (there.y - here.y) * progress
        ships.append({"ship": s.ship, "role": s.role, "status": s.status,
                      "waypoint": s.waypoint, "origin": s.origin, "x": x, "y": y,
                      "progress": progress,
                      "arrival": from_db(s.arrival).isoformat() if s.arrival else None,
                      "from": [here.x, here.y] if here is not None else None,
                      "to": [there.x, there.y]})
    markets = tree_markets(f)
    return {"system": f.system,
            "waypoints": [{"symbol": w.symbol, "type": w.type, "x": w.x, "y": w.y,
                           "market": "MARKETPLACE" in json.loads(w.traits),
                           "in_tree": w.symbol in markets} for w in waypoints.values()],
            "ships": ships}


def chart_data(f: Factory, agent: str) -> dict:
    """Credits over time (the balances the server gave with each answer), units of the
    target acquired over time, and supply and price of each good the factory watches."""
    entries = list(LedgerEntry.select().where(
        LedgerEntry.agent == agent, LedgerEntry.state == "CONFIRMED").order_by(
        LedgerEntry.confirmed_at))
    credits = [[from_db(e.confirmed_at).isoformat(), e.credits_after] for e in entries
               if e.credits_after is not None and e.confirmed_at
               and from_db(e.confirmed_at) >= from_db(f.created_at)]
    units, total = [[from_db(f.created_at).isoformat(), f.held_at_start]], f.held_at_start
    for e in entries:
        if e.factory == f.id and e.good == f.target and e.kind == _acquiring(f) and e.confirmed_at:
            total += e.units
            units.append([from_db(e.confirmed_at).isoformat(), total])
    watched = sorted({(n.waypoint, n.good) for n in (f.plan.flatten() if f.plan else [])
                      if n.waypoint} | {(t.source, t.good) for t in f.tasks.values()})
    since = f.created_at
    markets = []
    for waypoint, good in watched:
        rows = MarketHistory.select().where(
            MarketHistory.waypoint == waypoint, MarketHistory.good == good,
            MarketHistory.observed_at >= since).order_by(MarketHistory.observed_at)
        points = [[from_db(r.observed_at).isoformat(), LEVELS.get(r.supply), r.purchase_price]
                  for r in rows]
        if points:
            markets.append({"good": good, "waypoint": waypoint, "points": points})
    return {"credits": credits, "units": units, "markets": markets,
            "levels": list(LEVELS)}


def _acquiring(f: Factory) -> str:
    return {DeliverKind.CONSTRUCTION: "SUPPLY", DeliverKind.CONTRACT: "DELIVER",
            DeliverKind.SELL: "SELL"}.get(f.destination.kind, "PURCHASE")


def serve(storage: Storage, host: str, port: int) -> None:  # pragma: no cover - blocks
    from waitress import serve as waitress_serve

    waitress_serve(create_app(storage), host=host, port=port, threads=4)
