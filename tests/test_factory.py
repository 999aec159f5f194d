from datetime import UTC, datetime, timedelta

import pytest

from domain.errors import InvalidTransition
from domain.factory import (
    Factory,
    FactoryStatus,
    TaskKind,
    TaskState,
    backoff,
    task_id,
)
from domain.plan import resolve
from tests.test_plan import AC_CHAIN, ac_markets

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def make(units_wanted=None, lot=40, max_attempts=5):
    plan = resolve("ADVANCED_CIRCUITRY", AC_CHAIN, ac_markets())
    return Factory(id="f1", target="ADVANCED_CIRCUITRY", system="X1-T1", plan=plan, lot=lot,
                   units_wanted=units_wanted, max_attempts=max_attempts, created_at=T0)


def run(f, tid, ship="S1", bought=None, delivered=None, price=100, now=T0):
    """Drive one task through assign, purchase, sale and finish."""
    task = f.assign(tid, ship, now)
    units = task.units_target if bought is None else bought
    f.record_purchase(tid, units, units * price)
    if not task.keeps_goods:
        f.record_sale(tid, units if delivered is None else delivered, units * price // 2)
    return f.finish_task(tid, now)


def tid(path, r=1):
    return task_id("f1", r, path)


def test_start_builds_one_task_per_node_with_dependencies():
    f = make()
    tasks = f.start(T0)
    assert f.status is FactoryStatus.ACTIVE and f.started_at == T0 and f.round == 1
    assert len(tasks) == len(f.plan.flatten()) == 9
    root = f.root_task()
    assert root.kind is TaskKind.COLLECT and root.destination is None
    assert root.depends_on == (tid("0.0"), tid("0.1"))
    copper_ore = f.tasks[tid("0.0.1.0")]
    assert (copper_ore.kind, copper_ore.source, copper_ore.destination) == (
        TaskKind.SOURCE, "X1-T1-B2", "X1-T1-A3")
    assert copper_ore.state is TaskState.READY and copper_ore.units_target == 40
    assert f.tasks[tid("0.0.1")].state is TaskState.BLOCKED
    with pytest.raises(InvalidTransition, match="not PENDING"):
        f.start(T0)


def test_inputs_feed_balanced_lots_and_parent_waits_for_supply():
    f = make(lot=30)
    f.start(T0)
    assert {f.tasks[tid(p)].units_target for p in ("0.0.0", "0.0.1.0", "0.1.0")} == {30}
    touched = run(f, tid("0.0.1.0"))
    copper = f.tasks[tid("0.0.1")]
    assert copper.state is TaskState.WAITING and copper in touched
    assert copper.inputs_done_at == T0
    assert f.tasks[tid("0.0")].state is TaskState.BLOCKED
    f.supply_ready(copper.id)
    assert copper.state is TaskState.READY


def test_assignable_orders_deepest_first_and_caps_ships_per_source():
    f = make()
    f.start(T0)
    ready = f.assignable(T0)
    assert ready[0].node_path.count(".") == 3
    both_b1 = [t for t in ready if t.source == "X1-T1-B1"]
    assert len(both_b1) == 2
    capped = f.assignable(T0, per_source_cap=1)
    assert len([t for t in capped if t.source == "X1-T1-B1"]) == 1
    f.assign(both_b1[0].id, "S1", T0)
    assert not [t for t in f.assignable(T0, per_source_cap=1) if t.source == "X1-T1-B1"]


def test_whole_round_completes_the_factory():
    f = make()
    f.start(T0)
    for path in ("0.0.1.0", "0.1.1.0"):
        run(f, tid(path))
    for path in ("0.0.1", "0.1.1"):
        f.supply_ready(tid(path))
        run(f, tid(path))
    for path in ("0.0.0", "0.1.0"):
        run(f, tid(path))
    for path in ("0.0", "0.1"):
        f.supply_ready(tid(path))
        run(f, tid(path))
    f.supply_ready(tid("0"))
    run(f, tid("0"), bought=25, price=400, now=T0 + timedelta(hours=1))
    assert f.status is FactoryStatus.COMPLETED
    assert f.units_acquired == 25 and f.finished_at == T0 + timedelta(hours=1)
    assert f.credits_spent == sum(t.cost - t.revenue for t in f.tasks.values())


def test_units_wanted_starts_new_rounds_until_held():
    f = make(units_wanted=50)
    f.start(T0)
    root = f.root_task()
    assert root.units_target == 50
    for t in list(f.current_tasks()):
        t.state = TaskState.DONE if t is not root else TaskState.READY
    touched = run(f, root.id, bought=30)
    assert f.status is FactoryStatus.ACTIVE and f.round == 2 and f.units_acquired == 30
    assert f.root_task().units_target == 20 and f.root_task() in touched
    assert sorted(t.round for t in f.tasks.values() if t.node_path == "0") == [1, 2]
    for t in list(f.current_tasks()):
        t.state = TaskState.DONE if t.node_path != "0" else TaskState.READY
    run(f, f.root_task().id, bought=20)
    assert f.status is FactoryStatus.COMPLETED and f.units_acquired == 50


def test_failures_back_off_then_fail_the_factory():
    f = make(max_attempts=2)
    f.start(T0)
    t = tid("0.1.0")
    f.assign(t, "S1", T0)
    retry = backoff(1, T0)
    task = f.fail_task(t, T0, "4203 not enough fuel", retry)
    assert task.state is TaskState.READY and task.last_ship == "S1" and task.attempts == 1
    assert t not in [x.id for x in f.assignable(T0)]
    assert t in [x.id for x in f.assignable(retry)]
    with pytest.raises(InvalidTransition, match="backing off"):
        f.assign(t, "S2", T0)
    f.assign(t, "S2", retry)
    f.fail_task(t, retry, "4203 not enough fuel", backoff(2, retry))
    assert f.status is FactoryStatus.FAILED
    assert f.error == "source SILICON_CRYSTALS failed 2 times: 4203 not enough fuel"
    assert all(x.finished for x in f.tasks.values())


def test_not_ready_sends_collect_back_to_waiting_and_source_to_backoff():
    f = make()
    f.start(T0)
    run(f, tid("0.0.1.0"))
    f.supply_ready(tid("0.0.1"))
    f.assign(tid("0.0.1"), "S1", T0)
    later = T0 + timedelta(minutes=1)
    task = f.not_ready(tid("0.0.1"), later, "supply fell to LIMITED", later)
    assert task.state is TaskState.WAITING and task.inputs_done_at == later
    assert task.attempts == 0
    f.assign(tid("0.1.0"), "S2", T0)
    task = f.not_ready(tid("0.1.0"), T0, "price above ceiling", later)
    assert task.state is TaskState.READY and task.not_before == later


def test_release_returns_the_task_without_an_attempt():
    f = make()
    f.start(T0)
    f.assign(tid("0.1.0"), "S1", T0)
    f.record_purchase(tid("0.1.0"), 10, 100)
    task = f.release(tid("0.1.0"))
    assert task.state is TaskState.READY and task.attempts == 0 and task.ship is None
    assert task.units_held == 10, "a ship busy elsewhere still holds the goods"
    f.assign(tid("0.1.0"), "S1", T0)
    task = f.release(tid("0.1.0"), ship_lost=True)
    assert task.units_held == 0 and task.units_lost == 10, "a lost ship took them along"


def test_planless_factory_starts_with_the_plan_it_is_given():
    f = make()
    plan, f.plan = f.plan, None
    with pytest.raises(InvalidTransition, match="without a plan"):
        f.start(T0)
    assert len(f.start(T0, plan)) == 9 and f.plan is plan


def test_refeed_delivers_the_inputs_of_a_lost_collect_again():
    f = make()
    f.start(T0)
    run(f, tid("0.0.1.0"))
    f.supply_ready(tid("0.0.1"))
    f.assign(tid("0.0.1"), "S1", T0)
    f.record_purchase(tid("0.0.1"), 40, 4000)
    task = f.release(tid("0.0.1"), ship_lost=True)
    touched = f.refeed(task.id)
    fresh = tid("0.0.1.0") + "~1"
    assert [t.id for t in touched] == [tid("0.0.1"), fresh]
    assert task.state is TaskState.BLOCKED and task.depends_on == (fresh,)
    assert f.tasks[fresh].state is TaskState.READY and f.tasks[fresh].feed == 1
    assert f.tasks[fresh].destination == task.source
    run(f, fresh)
    assert task.state is TaskState.WAITING, "the new delivery unblocks it"
    with pytest.raises(InvalidTransition, match="not a collect task ready"):
        f.refeed(fresh)


def test_guards():
    f = make()
    with pytest.raises(InvalidTransition, match="factory f1 is PENDING"):
        f.assign(tid("0.1.0"), "S1", T0)
    f.start(T0)
    with pytest.raises(InvalidTransition, match="no task"):
        f.assign("nope", "S1", T0)
    with pytest.raises(InvalidTransition, match="it is BLOCKED, not READY"):
        f.assign(tid("0"), "S1", T0)
    f.assign(tid("0.1.0"), "S1", T0)
    with pytest.raises(InvalidTransition, match="moved no goods"):
        f.finish_task(tid("0.1.0"), T0)
    f.record_purchase(tid("0.1.0"), 10, 1000)
    with pytest.raises(InvalidTransition, match="holds 10, cannot sell 11"):
        f.record_sale(tid("0.1.0"), 11, 10)
    f.record_fuel(72)
    assert f.credits_spent == 1072
    f.stop(T0)
    assert f.status is FactoryStatus.STOPPED
    assert f.tasks[tid("0.1.0")].state is TaskState.CANCELLED
    with pytest.raises(InvalidTransition):
        f.stop(T0)
    with pytest.raises(InvalidTransition):
        f.fail("x", T0)
    with pytest.raises(InvalidTransition):
        f.complete(T0)


def test_backoff_grows_and_caps():
    assert backoff(1, T0) == T0 + timedelta(seconds=5)
    assert backoff(3, T0) == T0 + timedelta(seconds=20)
    assert backoff(30, T0) == T0 + timedelta(seconds=300)
