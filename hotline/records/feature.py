"""The call records feature: what it adds to `hotline serve` (its loops and its tables)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
from redis.asyncio import Redis

from ami_bridge.roster import Roster
from ami_bridge.seating import Seating
from hotline.records.ingest import CallsEnded, QueueLogReader
from hotline.records.recorder import OutboxRecorder
from hotline.records.report import figures_by_level
from hotline.records.service import keep_partitions, keep_rollup
from hotline.records.staffing import keep_staffed
from hotline.records.store import RecordStore
from hotline_core.feature import Feature, Work
from hotline_core.metrics import Metrics
from hotline_core.policy import Policy
from hotline_core.settings import Settings

SCHEMA = "hotline.records"  # migrations/ beside this module


@dataclass(frozen=True)
class Records:
    feature: Feature
    pool: asyncpg.Pool[Any]
    policy: Policy
    now: Callable[[], datetime]

    async def today_by_level(self) -> dict[str, dict[str, Any]]:
        """Today's figures per level (the live board), read from the rollup and the latest calls."""
        async with self.pool.acquire() as conn:
            # The wall clock for the waits (the calls' times are real), the pinned one for the day.
            return await figures_by_level(conn, self.policy, self.now().astimezone(self.policy.zone).date(),
                                          datetime.now(UTC))

    async def reachable(self) -> bool:
        return bool(await self.pool.fetchval("SELECT true"))


def records_feature(settings: Settings, policy: Policy, redis: Redis, pool: asyncpg.Pool[Any],
                    now: Callable[[], datetime], roster: Roster, calls_ended: CallsEnded, metrics: Metrics) -> Records:
    """Facts from the call path's outbox into the database, Asterisk's queue_log read beside
    them (telling `calls_ended` of calls an agent finished), partitions and the rollup kept."""
    store = RecordStore(pool)
    keep = settings.records_retention_months
    loops: dict[str, Work] = {
        # The outbox's sanity window is the wall clock's: a pinned clock (frozen_time, for desks and
        # seasons in tests and demos) must not make today's real calls look like future ones.
        "records outbox": OutboxRecorder(redis, settings.redis_prefix, store, metrics=metrics).run,
        "partition upkeep": lambda: keep_partitions(pool, now, policy, keep),
        "rollup upkeep": lambda: keep_rollup(pool, policy, now, keep),
        "desk re-evaluation": lambda: keep_staffed(pool, roster, policy, now),
    }
    if settings.queue_log_file is not None:
        loops["queue_log reader"] = QueueLogReader(
            store, settings.queue_log_file, settings.queue_log_source, Seating(roster, policy, now),
            completed=calls_ended, completed_within_s=settings.sms_retry_window_s).run
    return Records(Feature("records", loops=loops, migrations=SCHEMA), pool, policy, now)
