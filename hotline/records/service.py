"""Upkeep of the records database while `hotline serve` runs: next months' partitions exist
before rows need them, months past the retention are dropped, and the hourly rollup is kept
current by one writer at a time across every process and instance (reports only read it)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import structlog

from hotline.records.partitions import add_months, ensure_partitions, month_start, months_around, prune
from hotline.records.report import ROLLUP_LOCK, Period, decide_fcr, refresh_rollup
from hotline_core.loops import every
from hotline_core.policy import Policy

log = structlog.get_logger("records")


async def keep_partitions(pool: asyncpg.Pool[Any], now: Callable[[], datetime], policy: Policy, keep_months: int,
                          every_s: float = 3600.0) -> None:
    async def upkeep() -> None:
        today = now().astimezone(policy.zone).date()
        async with pool.acquire() as conn:
            await ensure_partitions(conn, months_around(today, back=0, ahead=2))
            dropped = await prune(conn, today, keep_months)
        if dropped:
            log.info("records past their retention dropped", partitions=dropped)

    await every(every_s, upkeep, "partition upkeep")


async def roll_up(pool: asyncpg.Pool[Any], policy: Policy, now: Callable[[], datetime], keep_months: int) -> int | None:
    """One round of the rollup's upkeep: recompute every stale hour of the retention, if no other
    process holds the writer's lock (None then); returns the hours recomputed."""
    today = now().astimezone(policy.zone).date()
    first = add_months(month_start(today), -(keep_months - 1))
    period = Period.days(first, today + timedelta(days=1), policy)
    async with pool.acquire() as conn:
        if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", ROLLUP_LOCK):
            return None  # another instance is the writer this round
        try:
            # The wall clock, not a pinned one (frozen_time, for seasons in tests and demos): the
            # calls' times are real, and so is whether their window has passed.
            await decide_fcr(conn, policy, period.start, datetime.now(UTC))
            return await refresh_rollup(conn, policy, period)
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", ROLLUP_LOCK)


async def keep_rollup(pool: asyncpg.Pool[Any], policy: Policy, now: Callable[[], datetime], keep_months: int,
                      every_s: float = 10.0) -> None:
    async def upkeep() -> None:
        hours = await roll_up(pool, policy, now, keep_months)
        if hours:
            log.debug("rollup brought up to date", hours=hours)

    await every(every_s, upkeep, "rollup upkeep")
