"""Upkeep of the records database while `hotline serve` runs: next months' partitions exist
before rows need them, and months past the retention are dropped."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

import asyncpg
import structlog

from hotline_core.db import ensure_partitions, months_around, prune
from hotline_core.loops import every

log = structlog.get_logger("records")


async def keep_partitions(pool: asyncpg.Pool[Any], today: Callable[[], date], keep_months: int,
                          every_s: float = 3600.0) -> None:
    async def upkeep() -> None:
        async with pool.acquire() as conn:
            await ensure_partitions(conn, months_around(today(), back=0, ahead=2))
            dropped = await prune(conn, today(), keep_months)
        if dropped:
            log.info("records past their retention dropped", partitions=dropped)

    await every(every_s, upkeep, "partition upkeep")
