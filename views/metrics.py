"""Prometheus metrics, with the official client library.

`DatabaseCollector` reads the database at each scrape (`goods-factory web` serves it on
/metrics), so it covers every process's factories: credits, units, tasks by state,
production waits. `ClientCollector` reads one running process's HTTP client (`--metrics-port`
of produce, resume and run): requests by endpoint and status, 429s, time spent waiting
for the rate limiter.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from domain.factory import TaskState
from storage.models import LedgerEntry
from storage.repositories import Storage


class DatabaseCollector(Collector):
    def __init__(self, storage: Storage, clock: Callable[[], datetime]):
        self.storage, self.clock = storage, clock

    def collect(self):
        now = self.clock()
        credits = GaugeMetricFamily("goods_factory_agent_credits",
                                    "the agent's credits after its latest trade", labels=["agent"])
        units = GaugeMetricFamily("goods_factory_units_acquired",
                                  "units of the target acquired", labels=["factory", "target"])
        spent = GaugeMetricFamily("goods_factory_credits_spent",
                                  "credits the factory spent, net of sales",
                                  labels=["factory", "target"])
        tasks = GaugeMetricFamily("goods_factory_tasks", "tasks by state",
                                  labels=["factory", "state"])
        waiting = GaugeMetricFamily("goods_factory_production_wait_seconds",
                                    "longest wait of a lot for its exporter's supply",
                                    labels=["factory"])
        agents = set()
        for summary in self.storage.factories.list():
            labels = [summary.id, summary.target]
            units.add_metric(labels, summary.units_acquired)
            spent.add_metric(labels, summary.credits_spent)
            agents.add(summary.agent)
            f = self.storage.factories.load(summary.id)
            for state in TaskState:
                tasks.add_metric([f.id, state.value],
                                 sum(1 for t in f.tasks.values() if t.state is state))
            since = [t.waiting_since for t in f.tasks.values()
                     if t.state is TaskState.WAITING and t.waiting_since]
            waiting.add_metric([f.id], max(((now - s).total_seconds() for s in since),
                                           default=0.0))
        for agent in sorted(agents):
            latest = (LedgerEntry.select(LedgerEntry.credits_after)
                      .where(LedgerEntry.agent == agent, LedgerEntry.state == "CONFIRMED",
                             LedgerEntry.credits_after.is_null(False))
                      .order_by(LedgerEntry.confirmed_at.desc(), LedgerEntry.id.desc()).first())
            if latest is not None:
                credits.add_metric([agent], latest.credits_after)
        yield from (credits, units, spent, tasks, waiting)


class ClientCollector(Collector):
    """The running process's API traffic, read from its client at each scrape."""

    def __init__(self, client):
        self.client = client

    def collect(self):
        requests = CounterMetricFamily("goods_factory_api_requests",
                                       "requests answered, by endpoint and HTTP status",
                                       labels=["endpoint", "status"])
        for (endpoint, status), count in sorted(self.client.statuses.items()):
            requests.add_metric([endpoint, str(status)], count)
        throttled = CounterMetricFamily("goods_factory_api_throttled",
                                        "429 answers (rate limit exceeded)")
        throttled.add_metric([], sum(n for (_e, s), n in self.client.statuses.items()
                                     if s == 429))
        wait = CounterMetricFamily("goods_factory_rate_limiter_wait_seconds",
                                   "time requests spent waiting for the rate limiter")
        wait.add_metric([], self.client.limiter.waited)
        yield from (requests, throttled, wait)
