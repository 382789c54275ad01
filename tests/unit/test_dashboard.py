"""The Grafana dashboard shipped in docker/ asks only for metrics `hotline serve` exports."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime
from pathlib import Path

from ami_bridge.model import QueueModel
from ami_bridge.seating import DeskOf
from hotline.monitor.collector import LiveCollector
from hotline.monitor.service import Monitor, Sources
from hotline_core.metrics import Metrics
from hotline_core.policy import Policy

DASHBOARD = Path(__file__).resolve().parents[2] / "docker" / "grafana" / "hotline-dashboard.json"
SUFFIXES = ("_total", "_bucket", "_count", "_sum", "_created")  # what prometheus-client adds to a name


async def no_tables() -> dict[str, datetime | None]:
    return {}


async def no_dead() -> int:
    return 0


async def down() -> bool:
    return False


async def nobody() -> DeskOf:
    return lambda _agent: None


async def test_every_panel_queries_an_exported_metric(policy: Policy) -> None:
    metrics = Metrics()
    sources = Sources(model=QueueModel(), changed=asyncio.Event(), desks=nobody, today=None, tables=no_tables,
                      sms_dead=no_dead, sms_added=no_dead, outbox=no_dead, redis_up=down, postgres_up=None, ami_up=lambda: None)
    monitor = Monitor(policy, sources, metrics, lambda: datetime.now(UTC))
    await monitor.refresh()
    names = {m.name for m in metrics.registry.collect()} | {m.name for m in LiveCollector(monitor).collect()}
    dashboard = json.loads(DASHBOARD.read_text())
    assert len(dashboard["panels"]) >= 15
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            used = set(re.findall(r"\bhotline_[a-z_]+", target["expr"]))
            assert used, panel["title"]
            for name in used:
                base = next((name.removesuffix(s) for s in SUFFIXES if name.endswith(s)), name)
                assert base in names or name in names, f"{panel['title']}: {name} is not exported"
