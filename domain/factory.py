"""The factory aggregate: a plan turned into a graph of ship tasks, and the rules that move it.

A *source* task buys a good at one market and sells it to the exporter that consumes it
(or keeps it, for a bought target). A *collect* task buys a made good from its exporter
once every input was delivered and the exporter's supply rose to the threshold, then
delivers it one level up (or keeps it, for the target). The actors only execute what
this module decides; every method takes `now` and does no I/O.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from domain.enums import Acquisition, SupplyLevel
from domain.errors import InvalidTransition
from domain.plan import PlanNode

MAX_ATTEMPTS = 5


class FactoryStatus(StrEnum):
    PENDING = "PENDING"
    ACTIVE = "ACTIVE"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    STOPPED = "STOPPED"

    @property
    def finished(self) -> bool:
        return self in (FactoryStatus.COMPLETED, FactoryStatus.FAILED, FactoryStatus.STOPPED)


class TaskKind(StrEnum):
    SOURCE = "SOURCE"
    COLLECT = "COLLECT"


class TaskState(StrEnum):
    BLOCKED = "BLOCKED"  # inputs not yet delivered
    WAITING = "WAITING"  # inputs delivered; waiting for the exporter's supply to rise
    READY = "READY"  # may be given to a ship (after `not_before`)
    RUNNING = "RUNNING"  # a ship is on it
    DONE = "DONE"
    FAILED = "FAILED"  # out of attempts
    CANCELLED = "CANCELLED"


@dataclass
class Task:
    id: str
    factory_id: str
    round: int
    node_path: str
    kind: TaskKind
    good: str
    source: str
    destination: str | None  # None: keep the goods (the target)
    units_target: int
    depends_on: tuple[str, ...] = ()
    feed: int = 0  # 0, or n for the n-th re-feed of a node whose output was lost
    state: TaskState = TaskState.BLOCKED
    ship: str | None = None
    last_ship: str | None = None
    attempts: int = 0
    units_bought: int = 0
    units_delivered: int = 0
    units_lost: int = 0  # bought, then gone with a lost ship
    cost: int = 0
    revenue: int = 0
    not_before: datetime | None = None
    inputs_done_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    last_error: str | None = None

    @property
    def units_held(self) -> int:
        """Units bought for this task and not yet delivered (they are in the ship's hold)."""
        return self.units_bought - self.units_delivered - self.units_lost

    @property
    def keeps_goods(self) -> bool:
        return self.destination is None

    @property
    def finished(self) -> bool:
        return self.state in (TaskState.DONE, TaskState.FAILED, TaskState.CANCELLED)


@dataclass
class Factory:
    id: str
    target: str
    system: str
    plan: PlanNode | None  # None until the coordinator has planned it
    lot: int
    units_wanted: int | None = None  # None: one collection of whatever is available
    min_supply: SupplyLevel = SupplyLevel.MODERATE
    status: FactoryStatus = FactoryStatus.PENDING
    round: int = 0
    units_acquired: int = 0
    credits_spent: int = 0
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: str | None = None
    tasks: dict[str, Task] = field(default_factory=dict)
    max_attempts: int = MAX_ATTEMPTS

    # --- lifecycle -------------------------------------------------------------------

    def start(self, now: datetime, plan: PlanNode | None = None) -> list[Task]:
        """PENDING -> ACTIVE with `plan` (or the one given at creation): the first round."""
        self._require(FactoryStatus.PENDING, "start")
        self.plan = plan or self.plan
        if self.plan is None:
            raise InvalidTransition(f"cannot start factory {self.id} without a plan")
        self.status = FactoryStatus.ACTIVE
        self.started_at = now
        return self._new_round()

    def complete(self, now: datetime) -> None:
        self._require(FactoryStatus.ACTIVE, "complete")
        self.status = FactoryStatus.COMPLETED
        self.finished_at = now

    def fail(self, reason: str, now: datetime) -> None:
        if self.status.finished:
            raise InvalidTransition(f"factory {self.id} is already {self.status.value}")
        self.status = FactoryStatus.FAILED
        self.error = reason
        self.finished_at = now
        self._cancel_open_tasks(now)

    def stop(self, now: datetime) -> None:
        """The user's `stop`: final; work under way is cancelled."""
        if self.status.finished:
            raise InvalidTransition(f"factory {self.id} is already {self.status.value}")
        self.status = FactoryStatus.STOPPED
        self.finished_at = now
        self._cancel_open_tasks(now)

    # --- queries ---------------------------------------------------------------------

    def current_tasks(self) -> list[Task]:
        return [t for t in self.tasks.values() if t.round == self.round]

    def root_task(self) -> Task:
        return next(t for t in self.current_tasks() if t.node_path == "0")

    def running(self) -> list[Task]:
        return [t for t in self.tasks.values() if t.state is TaskState.RUNNING]

    def waiting(self) -> list[Task]:
        return [t for t in self.tasks.values() if t.state is TaskState.WAITING]

    def assignable(self, now: datetime, per_source_cap: int | None = None) -> list[Task]:
        """READY tasks whose back-off is over, skipping sources that already have
        `per_source_cap` ships on them; deepest first so inputs start early."""
        busy = Counter(t.source for t in self.running())
        out = []
        for t in sorted(self.tasks.values(), key=lambda t: (-t.node_path.count("."), t.id)):
            if t.state is not TaskState.READY or (t.not_before and t.not_before > now):
                continue
            if per_source_cap is not None and busy[t.source] >= per_source_cap:
                continue
            busy[t.source] += 1
            out.append(t)
        return out

    def wanted_remaining(self) -> int | None:
        if self.units_wanted is None:
            return None
        return max(0, self.units_wanted - self.units_acquired)

    # --- task transitions ------------------------------------------------------------

    def assign(self, task_id: str, ship: str, now: datetime) -> Task:
        task = self._task(task_id, TaskState.READY, "assign")
        if task.not_before and task.not_before > now:
            raise InvalidTransition(f"task {task_id} is backing off until {task.not_before}")
        task.state = TaskState.RUNNING
        task.ship = ship
        task.started_at = task.started_at or now
        return task

    def supply_ready(self, task_id: str) -> Task:
        """The watcher saw the exporter's supply at the threshold after the inputs landed."""
        task = self._task(task_id, TaskState.WAITING, "mark ready")
        task.state = TaskState.READY
        return task

    def record_purchase(self, task_id: str, units: int, price: int) -> Task:
        task = self._task(task_id, TaskState.RUNNING, "record a purchase for")
        task.units_bought += units
        task.cost += price
        self.credits_spent += price
        return task

    def record_sale(self, task_id: str, units: int, price: int) -> Task:
        task = self._task(task_id, TaskState.RUNNING, "record a sale for")
        if units > task.units_held:
            raise InvalidTransition(f"task {task_id} holds {task.units_held}, cannot sell {units}")
        task.units_delivered += units
        task.revenue += price
        self.credits_spent -= price
        return task

    def record_fuel(self, price: int) -> None:
        self.credits_spent += price

    def finish_task(self, task_id: str, now: datetime) -> list[Task]:
        """A ship finished its task; returns the tasks this change touched (to persist)."""
        task = self._task(task_id, TaskState.RUNNING, "finish")
        moved = task.units_held if task.keeps_goods else task.units_delivered
        if moved <= 0:
            raise InvalidTransition(f"task {task_id} moved no goods; report it as not ready")
        task.state = TaskState.DONE
        task.finished_at = now
        task.last_ship, task.ship = task.ship, None
        touched = [task]
        if task.node_path == "0":
            self.units_acquired += task.units_held
            remaining = self.wanted_remaining()
            if remaining is None or remaining == 0:
                self.complete(now)
            else:
                touched.extend(self._new_round())
            return touched
        parent = self._parent_of(task)
        if all(self.tasks[d].state is TaskState.DONE for d in parent.depends_on):
            parent.state = TaskState.WAITING
            parent.inputs_done_at = now
            touched.append(parent)
        return touched

    def not_ready(self, task_id: str, now: datetime, reason: str, retry_at: datetime) -> Task:
        """The ship found nothing to buy yet (supply fell, or the price is above the ceiling).

        Goods already bought stay with the task; a collect task goes back to waiting for
        a new supply signal, a source task backs off without spending an attempt.
        """
        task = self._task(task_id, TaskState.RUNNING, "mark not ready")
        task.last_ship, task.ship = task.ship, None
        task.last_error = reason
        if task.kind is TaskKind.COLLECT:
            task.state = TaskState.WAITING
            task.inputs_done_at = now
        else:
            task.state = TaskState.READY
            task.not_before = retry_at
        return task

    def fail_task(self, task_id: str, now: datetime, error: str, retry_at: datetime) -> Task:
        """A ship failed; retry later (on another ship) or, out of attempts, fail the factory."""
        task = self._task(task_id, TaskState.RUNNING, "fail")
        task.attempts += 1
        task.last_error = error
        task.last_ship, task.ship = task.ship, None
        if task.attempts >= self.max_attempts:
            task.state = TaskState.FAILED
            task.finished_at = now
            self.fail(f"{task.kind.value.lower()} {task.good} failed {task.attempts} times: "
                      f"{error}", now)
        else:
            task.state = TaskState.READY
            task.not_before = retry_at
        return task

    def refeed(self, task_id_: str) -> list[Task]:
        """The output bought for this collect task left with a lost ship, and its
        exporter used up the inputs making it: deliver its inputs again."""
        task = self.tasks[task_id_]
        if task.kind is not TaskKind.COLLECT or task.state is not TaskState.READY:
            raise InvalidTransition(f"task {task_id_} is not a collect task ready to re-feed")
        node = self.plan.find(task.node_path)
        feed = 1 + max(t.feed for t in self.tasks.values() if t.round == task.round)
        fresh = [t for child in node.children for t in _subtree_tasks(
            self, child, node, task.round, feed, self.lot)]
        self.tasks.update((t.id, t) for t in fresh)
        task.depends_on = tuple(task_id(self.id, task.round, c.path, feed)
                                for c in node.children)
        task.state = TaskState.BLOCKED
        task.inputs_done_at = None
        return [task, *fresh]

    def release(self, task_id: str, ship_lost: bool = False) -> Task:
        """Take a task off a ship that is gone or busy elsewhere, without counting an
        attempt. If the ship is lost, what it held for the task is written off."""
        task = self._task(task_id, TaskState.RUNNING, "release")
        if ship_lost:
            task.units_lost += task.units_held
        task.last_ship, task.ship = task.ship, None
        task.state = TaskState.READY
        return task

    # --- internals -------------------------------------------------------------------

    def _new_round(self) -> list[Task]:
        self.round += 1
        tasks = build_tasks(self, self.round)
        self.tasks.update((t.id, t) for t in tasks)
        return tasks

    def _cancel_open_tasks(self, now: datetime) -> None:
        for task in self.tasks.values():
            if not task.finished:
                task.state = TaskState.CANCELLED
                task.finished_at = now

    def _task(self, task_id: str, expected: TaskState, verb: str) -> Task:
        if self.status is not FactoryStatus.ACTIVE:
            raise InvalidTransition(f"cannot {verb} a task: factory {self.id} is "
                                    f"{self.status.value}")
        task = self.tasks.get(task_id)
        if task is None:
            raise InvalidTransition(f"no task {task_id} in factory {self.id}")
        if task.state is not expected:
            raise InvalidTransition(
                f"cannot {verb} task {task_id}: it is {task.state.value}, not {expected.value}"
            )
        return task

    def _parent_of(self, task: Task) -> Task:
        return next(t for t in self.tasks.values() if task.id in t.depends_on)

    def _require(self, status: FactoryStatus, verb: str) -> None:
        if self.status is not status:
            raise InvalidTransition(
                f"cannot {verb} factory {self.id}: it is {self.status.value}, not {status.value}"
            )


def task_id(factory_id: str, round_: int, node_path: str, feed: int = 0) -> str:
    return f"{factory_id}/r{round_}/{node_path}" + (f"~{feed}" if feed else "")


def build_tasks(factory: Factory, round_: int) -> list[Task]:
    """One task per plan node. Inputs are fed in equal lots; the root asks for what is left."""
    remaining = factory.wanted_remaining()
    root_units = factory.lot if remaining is None else remaining
    return _subtree_tasks(factory, factory.plan, None, round_, 0, root_units)


def _subtree_tasks(factory: Factory, top: PlanNode, above: PlanNode | None, round_: int,
                   feed: int, top_units: int) -> list[Task]:
    tasks = []
    for node, parent in top.walk():
        parent = parent or above
        kind = TaskKind.SOURCE if node.method is Acquisition.BUY else TaskKind.COLLECT
        deps = tuple(task_id(factory.id, round_, c.path, feed) for c in node.children)
        tasks.append(Task(
            id=task_id(factory.id, round_, node.path, feed), factory_id=factory.id,
            round=round_, node_path=node.path, kind=kind, good=node.good,
            source=node.waypoint or "", destination=parent.waypoint if parent else None,
            units_target=top_units if node is top else factory.lot, depends_on=deps,
            state=TaskState.BLOCKED if deps else TaskState.READY, feed=feed))
    return tasks


def backoff(attempts: int, now: datetime, base: float = 5.0, cap: float = 300.0) -> datetime:
    """Exponential back-off for retries: 5 s, 10 s, 20 s … capped at five minutes."""
    return now + timedelta(seconds=min(cap, base * 2 ** max(0, attempts - 1)))
