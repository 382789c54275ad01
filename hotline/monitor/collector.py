"""Scrape-time gauges from the monitor's last picture: nothing is kept twice, nothing is asked
of Asterisk, Redis or PostgreSQL while Prometheus waits."""

from __future__ import annotations

import time
from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from hotline.monitor.alarms import alarm_kinds
from hotline.monitor.service import Monitor
from hotline.monitor.snapshot import AGENT_STATES


class LiveCollector(Collector):
    def __init__(self, monitor: Monitor):
        self._monitor = monitor

    def collect(self) -> Iterator[Metric]:
        monitor = self._monitor
        snapshot = monitor.snapshot
        up = GaugeMetricFamily("hotline_dependency_up", "1 when the dependency answered its last check",
                               labels=["dependency"])
        up.add_metric(["redis"], 1.0 if monitor.redis_up.fresh and monitor.redis_up.value else 0.0)
        if monitor.postgres_up is not None:
            up.add_metric(["postgres"], 1.0 if monitor.postgres_up.fresh and monitor.postgres_up.value else 0.0)
        yield up
        ages = GaugeMetricFamily("hotline_tier_table_age_seconds", "Seconds since the tier table's last import",
                                 labels=["table"])
        now = time.time()
        for table, imported in sorted(monitor.tables.value.items()):
            if imported is not None:
                ages.add_metric([table], now - imported.timestamp())
        yield ages
        yield GaugeMetricFamily("hotline_sms_dead_letters", "SMS jobs in the dead letters",
                                value=monitor.sms_dead.value)
        if snapshot is None:
            return
        waiting = GaugeMetricFamily("hotline_queue_callers_waiting", "Callers waiting in the level's queue",
                                    labels=["level"])
        longest = GaugeMetricFamily("hotline_queue_longest_wait_seconds", "Longest current wait in the level's queue",
                                    labels=["level"])
        today = {name: GaugeMetricFamily(f"hotline_level_{name}_today", f"Calls {name} today (records)",
                                         labels=["level"]) for name in ("offered", "answered", "abandoned", "released")}
        service = GaugeMetricFamily("hotline_level_service_level_today",
                                    "Answered within the level's threshold / offered, today", labels=["level"])
        target = GaugeMetricFamily("hotline_level_answer_rate_target", "The level's target", labels=["level"])
        surveyed = GaugeMetricFamily("hotline_level_surveyed_today", "Post-call surveys answered today (records)",
                                     labels=["level"])
        satisfaction = GaugeMetricFamily("hotline_level_satisfaction_today",
                                         "Satisfied / post-call surveys answered, today", labels=["level"])
        for line in snapshot.levels:
            waiting.add_metric([line.level], line.waiting)
            longest.add_metric([line.level], line.longest_wait_s)
            target.add_metric([line.level], line.target)
            for name, family in today.items():
                value = getattr(line, f"{name}_today")
                if value is not None:
                    family.add_metric([line.level], value)
            if line.service_level_today is not None:
                service.add_metric([line.level], line.service_level_today)
            if line.surveyed_today is not None:
                surveyed.add_metric([line.level], line.surveyed_today)
            if line.satisfaction_today is not None:
                satisfaction.add_metric([line.level], line.satisfaction_today)
        yield from (waiting, longest, *today.values(), service, target, surveyed, satisfaction)
        agents = GaugeMetricFamily("hotline_desk_agents", "Agents of the desk by state", labels=["desk", "state"])
        for desk in snapshot.desks:
            for state in AGENT_STATES:
                agents.add_metric([desk.desk, state], getattr(desk, state))
        yield agents
        alarms = GaugeMetricFamily("hotline_alarm_active", "1 while the alarm holds", labels=["kind", "subject"])
        active = {(a.kind, a.subject) for a in snapshot.alarms}
        for kind in alarm_kinds():
            if not any(k == kind for k, _ in active):
                alarms.add_metric([kind, ""], 0.0)
        for kind, subject in sorted(active):
            alarms.add_metric([kind, subject], 1.0)
        yield alarms
