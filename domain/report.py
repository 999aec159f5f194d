"""How a factory reads to a player: the status tree as text, and the same as JSON.

Each node of the tree shows the tasks that carry its good to the node above (several lots
and trips in sustained production), summed up: state, ships, units, credits and trips; a
node made at an exporter also shows what was fed to it, since when, and the export's
supply last seen.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from domain.enums import Acquisition
from domain.factory import Factory, FactoryStatus, Station, Task, TaskPurpose, TaskState
from domain.plan import PlanNode, render_tree
from domain.ranking import ceiling

ICONS = {
    TaskState.DONE: "✅", TaskState.RUNNING: "🔄", TaskState.WAITING: "⏳",
    TaskState.READY: "⏸", TaskState.FAILED: "❌", TaskState.CANCELLED: "✖",
}
# A node shows the most telling state among its tasks.
ORDER = (TaskState.RUNNING, TaskState.WAITING, TaskState.READY, TaskState.FAILED,
         TaskState.DONE, TaskState.CANCELLED)


def duration(seconds: float) -> str:
    seconds = int(max(0, seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"


@dataclass
class NodeWork:
    """The tasks of one node, summed up."""

    tasks: list[Task] = field(default_factory=list)

    @property
    def state(self) -> TaskState | None:
        states = {t.state for t in self.tasks}
        return next((s for s in ORDER if s in states), None)

    def total(self, attr: str) -> int:
        return sum(getattr(t, attr) for t in self.tasks)

    @property
    def ships(self) -> list[str]:
        return sorted({t.ship for t in self.tasks if t.ship})

    @property
    def waiting_since(self) -> datetime | None:
        return min((t.waiting_since for t in self.tasks
                    if t.state is TaskState.WAITING and t.waiting_since), default=None)

    @property
    def last_error(self) -> str | None:
        open_ = [t for t in self.tasks if t.last_error
                 and (not t.finished or t.state is TaskState.FAILED)]
        return open_[-1].last_error if open_ else None


def work_tree(factory: Factory) -> PlanNode | None:
    """The tree as the factory worked it: a good it had made shows the exporter and what
    was fed to it, a good it bought shows where (the latest place, if it moved); the plan
    fills in the goods no task has reached yet."""
    if factory.plan is None:
        return None
    planned = {(n.good, p.waypoint if p else None): n for n, p in factory.plan.walk()}
    tasks: dict[tuple[str, str | None], list[Task]] = {}
    for t in factory.tasks.values():
        key = (t.good, t.destination if t.purpose is TaskPurpose.FEED else None)
        tasks.setdefault(key, []).append(t)

    def build(good: str, parent: str | None, path: str, above: frozenset[str]) -> PlanNode:
        mine = sorted(tasks.get((good, parent), []), key=lambda t: (t.finished, -t.lot))
        plan = planned.get((good, parent))
        made = next((t for t in mine if t.kind.value == "COLLECT"), None)
        if made is not None and good not in above:
            node = PlanNode(good, Acquisition.FABRICATE, made.source, path=path)
            node.children = [build(g, made.source, f"{path}.{i}", above | {good})
                             for i, g in enumerate(made.inputs)]
        elif mine:
            node = PlanNode(good, Acquisition.BUY, mine[0].source, path=path,
                            below_threshold=mine[0].below_threshold)
        elif plan is not None:
            node = PlanNode(plan.good, plan.method, plan.waypoint, path=path,
                            below_threshold=plan.below_threshold)
            node.children = [build(c.good, plan.waypoint, f"{path}.{i}", above | {good})
                             for i, c in enumerate(plan.children)]
        else:
            node = PlanNode(good, Acquisition.PENDING, path=path)
        if plan is not None and plan.waypoint == node.waypoint:
            node.activity, node.supply = plan.activity, plan.supply
        return node

    return build(factory.target, None, "0", frozenset())


def node_work(factory: Factory, node: PlanNode, parent: PlanNode | None) -> NodeWork:
    """The tasks that bring this node's good to its parent (the output lots, for the root)."""
    if parent is None:
        tasks = [t for t in factory.tasks.values() if t.purpose is TaskPurpose.OUTPUT]
    else:
        tasks = [t for t in factory.tasks.values() if t.purpose is TaskPurpose.FEED
                 and t.good == node.good and t.destination == parent.waypoint]
    return NodeWork(sorted(tasks, key=lambda t: (t.lot, t.id)))


def _station(factory: Factory, node: PlanNode) -> Station | None:
    return factory.stations().get(f"{node.good}@{node.waypoint}")


def work_note(work: NodeWork, station: Station | None, now: datetime) -> str:
    state = work.state
    if state is None:
        return ""
    parts = []
    if work.ships:
        parts.append("ship " + ", ".join(work.ships))
    if len(work.tasks) > 1:
        done = sum(1 for t in work.tasks if t.state is TaskState.DONE)
        parts.append(f"{done}/{len(work.tasks)} lots done")
    for attr, label in (("units_bought", "bought"), ("units_delivered", "delivered")):
        if value := work.total(attr):
            parts.append(f"{value} {label}")
    if cost := work.total("cost"):
        parts.append(f"{cost:,} cr")
    if (trips := work.total("trips")) > 1:
        parts.append(f"{trips} trips")
    since = work.waiting_since
    if since is not None:
        parts.append(f"waiting for supply {duration((now - since).total_seconds())}")
    if station is not None and station.feeds:
        fed = ", ".join(f"{n} {g}" for g, n in station.fed().items())
        parts.append(f"fed {fed} since {station.since:%H:%M:%S}" if station.since
                     else f"fed {fed}")
    if attempts := work.total("attempts"):
        parts.append(f"{attempts} failed attempts")
    if work.last_error:
        parts.append(f"last: {work.last_error}")
    detail = f" ({', '.join(parts)})" if parts else ""
    return f"{ICONS[state]} {state.value}{detail}"


def money(factory: Factory) -> str:
    """Spending, income from the inputs sold to exporters, and what is left: the net."""
    f = factory
    received = sum(t.revenue for t in f.tasks.values())
    spent = f.credits_spent + received
    per_unit = f" ({f.credits_spent / f.units_acquired:,.0f} per unit)" if f.units_acquired \
        else ""
    return (f"spent {spent:,} credits on goods and fuel, got {received:,} back for the "
            f"inputs delivered: net {f.credits_spent:,}{per_unit}")


def quantity(factory: Factory) -> str:
    f = factory
    wanted = "whatever one load brings" if f.units_wanted is None else f"{f.units_wanted} wanted"
    lots = f.outputs()
    open_ = sum(1 for t in lots if not t.finished)
    extra = f"; {open_} of {len(lots)} lots open" if lots and f.units_wanted is not None else ""
    held = f"; {f.held_at_start} already held" if f.held_at_start else ""
    return f"{f.units_acquired} ({wanted}{extra}{held})"


def references(factory: Factory, factor: float | None) -> str:
    parts = []
    for good, price in sorted(factory.reference.items()):
        cap = ceiling(price, factor)
        parts.append(f"{good} {price:,}" + (f" (ceiling {cap:,})" if cap else ""))
    return ", ".join(parts)


def render_status(factory: Factory, now: datetime, factor: float | None = None) -> str:
    f = factory
    lines = [f"Factory: {f.id}",
             f"Target: {f.target} in {f.system} (buy at {f.min_supply.name} supply or more), "
             f"to {_where(f)}",
             f"Status: {f.status.value}"]
    lines.append(f"Quantity acquired: {quantity(f)}")
    lines.append(f"Credits: {money(f)}")
    if f.reference:
        lines.append(f"Reference prices: {references(f, factor)}")
    if f.error:
        lines.append(f"Error: {f.error}")
    tree = work_tree(f)
    if tree is None:
        lines.append("\nPlanning: reading the markets of the tree.")
        return "\n".join(lines)
    parents = {n.path: p for n, p in tree.walk()}

    def note(n: PlanNode) -> str:
        return work_note(node_work(f, n, parents[n.path]), _station(f, n), now)

    lines += ["", "Dependency tree:", render_tree(tree, note)]
    ships = sorted({t.ship for t in f.running() if t.ship})
    if ships:
        lines += ["", "Ships at work: " + ", ".join(ships)]
    return "\n".join(lines)


def _where(f: Factory) -> str:
    d = f.destination
    if d.keeps:
        return "the hold"
    return str(d)


def task_dict(t: Task, now: datetime) -> dict:
    return {"id": t.id, "purpose": t.purpose.value, "kind": t.kind.value, "good": t.good,
            "state": t.state.value, "ship": t.ship, "source": t.source,
            "destination": t.destination, "lot": t.lot, "units_target": t.units_target,
            "units_bought": t.units_bought, "units_delivered": t.units_delivered,
            "units_lost": t.units_lost, "cost": t.cost, "revenue": t.revenue,
            "trips": t.trips, "attempts": t.attempts,
            "waiting_seconds": (now - t.waiting_since).total_seconds()
            if t.state is TaskState.WAITING and t.waiting_since else None,
            "below_threshold": t.below_threshold, "last_error": t.last_error}


def status_dict(factory: Factory, now: datetime) -> dict:
    f = factory

    def iso(moment: datetime | None) -> str | None:
        return moment.isoformat() if moment else None

    def node(n: PlanNode, parent: PlanNode | None) -> dict:
        out = n.to_dict()
        out["children"] = [node(c, n) for c in n.children]
        work = node_work(f, n, parent)
        state = work.state
        out["task"] = None if state is None else {
            "state": state.value, "ships": work.ships, "lots": len(work.tasks),
            "units_bought": work.total("units_bought"),
            "units_delivered": work.total("units_delivered"), "cost": work.total("cost"),
            "revenue": work.total("revenue"), "trips": work.total("trips"),
            "attempts": work.total("attempts"),
            "waiting_seconds": (now - work.waiting_since).total_seconds()
            if work.waiting_since else None, "last_error": work.last_error}
        return out

    tree = work_tree(f)
    stations = [{"good": s.good, "waypoint": s.waypoint, "inputs": list(s.inputs),
                 "fed": s.fed(), "since": iso(s.since),
                 "waiting_lots": len(s.waiting)} for s in f.stations().values()]
    return {
        "id": f.id, "target": f.target, "system": f.system, "status": f.status.value,
        "min_supply": f.min_supply.name, "destination": str(f.destination), "lot": f.lot,
        "units_wanted": f.units_wanted, "units_acquired": f.units_acquired,
        "held_at_start": f.held_at_start, "credits_spent": f.credits_spent,
        "reference_prices": f.reference, "created_at": iso(f.created_at),
        "started_at": iso(f.started_at), "finished_at": iso(f.finished_at), "error": f.error,
        "tree": node(tree, None) if tree else None,
        "stations": stations,
        "tasks": [task_dict(t, now) for t in sorted(f.tasks.values(),
                                                    key=lambda t: (t.created_at or now, t.id))],
    }


def outcome_line(factory: Factory) -> str:
    """One line for the end of `produce`."""
    f = factory
    if f.status is FactoryStatus.COMPLETED:
        return f"factory {f.id} completed: acquired {f.units_acquired} {f.target}; {money(f)}"
    if f.status is FactoryStatus.FAILED:
        return f"factory {f.id} failed: {f.error}"
    return f"factory {f.id} is {f.status.value}"
