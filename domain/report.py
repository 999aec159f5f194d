"""How a factory reads to a player: the status tree as text, and the same as JSON."""

from __future__ import annotations

from datetime import datetime

from domain.factory import Factory, FactoryStatus, Task, TaskState
from domain.plan import PlanNode, render_tree

ICONS = {
    TaskState.DONE: "✅", TaskState.RUNNING: "🔄", TaskState.WAITING: "⏳",
    TaskState.READY: "⏸", TaskState.BLOCKED: "⏸", TaskState.FAILED: "❌",
    TaskState.CANCELLED: "✖",
}


def duration(seconds: float) -> str:
    seconds = int(max(0, seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"


def node_task(factory: Factory, node: PlanNode) -> Task | None:
    """The task of this node in the current round (its latest feed, if it was re-fed)."""
    tasks = [t for t in factory.current_tasks() if t.node_path == node.path]
    return max(tasks, key=lambda t: t.feed, default=None)


def waiting_seconds(task: Task, now: datetime) -> float | None:
    if task.state is TaskState.WAITING and task.inputs_done_at:
        return (now - task.inputs_done_at).total_seconds()
    return None


def task_note(task: Task | None, now: datetime) -> str:
    if task is None:
        return ""
    parts = []
    if task.ship:
        parts.append(f"ship {task.ship}")
    if task.units_bought:
        parts.append(f"{task.units_bought} bought")
    if task.units_delivered:
        parts.append(f"{task.units_delivered} delivered")
    if task.cost:
        parts.append(f"{task.cost:,} cr")
    waited = waiting_seconds(task, now)
    if waited is not None:
        parts.append(f"waiting for supply {duration(waited)}")
    if task.attempts:
        parts.append(f"{task.attempts} failed attempts")
    if task.last_error and task.state is not TaskState.DONE:
        parts.append(f"last: {task.last_error}")
    detail = f" ({', '.join(parts)})" if parts else ""
    return f"{ICONS[task.state]} {task.state.value}{detail}"


def money(factory: Factory) -> str:
    """Spending, income from the inputs sold to exporters, and what is left: the net."""
    f = factory
    received = sum(t.revenue for t in f.tasks.values())
    spent = f.credits_spent + received
    per_unit = f" ({f.credits_spent / f.units_acquired:,.0f} per unit)" if f.units_acquired \
        else ""
    return (f"spent {spent:,} credits on goods and fuel, got {received:,} back for the "
            f"inputs delivered: net {f.credits_spent:,}{per_unit}")


def render_status(factory: Factory, now: datetime) -> str:
    f = factory
    lines = [f"Factory: {f.id}",
             f"Target: {f.target} in {f.system} (buy at {f.min_supply.name} supply or more)",
             f"Status: {f.status.value}" + (f" (round {f.round})" if f.round > 1 else "")]
    if f.plan is not None:
        nodes = f.plan.flatten()
        done = sum(1 for n in nodes if (t := node_task(f, n)) and t.state is TaskState.DONE)
        lines.append(f"Progress: {done}/{len(nodes)} nodes completed")
    wanted = "whatever one load brings" if f.units_wanted is None else f"{f.units_wanted} wanted"
    lines.append(f"Quantity acquired: {f.units_acquired} ({wanted})")
    lines.append(f"Credits: {money(f)}")
    if f.error:
        lines.append(f"Error: {f.error}")
    if f.plan is None:
        lines.append("\nPlanning: reading the system's markets.")
        return "\n".join(lines)
    lines += ["", "Dependency tree:", render_tree(f.plan, lambda n: task_note(node_task(f, n),
                                                                                now))]
    ships = sorted({t.ship for t in f.running() if t.ship})
    if ships:
        lines += ["", "Ships at work: " + ", ".join(ships)]
    return "\n".join(lines)


def status_dict(factory: Factory, now: datetime) -> dict:
    f = factory

    def node(n: PlanNode) -> dict:
        out = n.to_dict()
        out["children"] = [node(c) for c in n.children]
        t = node_task(f, n)
        out["task"] = None if t is None else {
            "id": t.id, "kind": t.kind.value, "state": t.state.value, "ship": t.ship,
            "source": t.source, "destination": t.destination, "units_target": t.units_target,
            "units_bought": t.units_bought, "units_delivered": t.units_delivered,
            "cost": t.cost, "revenue": t.revenue, "attempts": t.attempts,
            "waiting_seconds": waiting_seconds(t, now), "last_error": t.last_error,
        }
        return out

    def iso(moment: datetime | None) -> str | None:
        return moment.isoformat() if moment else None

    return {
        "id": f.id, "target": f.target, "system": f.system, "status": f.status.value,
        "min_supply": f.min_supply.name, "round": f.round, "lot": f.lot,
        "units_wanted": f.units_wanted, "units_acquired": f.units_acquired,
        "credits_spent": f.credits_spent, "created_at": iso(f.created_at),
        "started_at": iso(f.started_at), "finished_at": iso(f.finished_at), "error": f.error,
        "tree": node(f.plan) if f.plan else None,
    }


def outcome_line(factory: Factory) -> str:
    """One line for the end of `produce`."""
    f = factory
    if f.status is FactoryStatus.COMPLETED:
        return f"factory {f.id} completed: acquired {f.units_acquired} {f.target}; {money(f)}"
    if f.status is FactoryStatus.FAILED:
        return f"factory {f.id} failed: {f.error}"
    return f"factory {f.id} is {f.status.value}"
