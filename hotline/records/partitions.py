"""The records' monthly partitions and their retention: next months exist before rows need them,
and months past the retention are dropped."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time

from hotline_core.db import Conn

PARTITIONED = ("calls", "call_details", "queue_log", "queue_visits")
_PARTITION = re.compile(r"^(calls|call_details|queue_log|queue_visits)_y(\d{4})m(\d{2})$")


def month_start(day: date) -> date:
    return day.replace(day=1)


def add_months(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def months_around(today: date, back: int, ahead: int) -> list[date]:
    first = month_start(today)
    return [add_months(first, offset) for offset in range(-back, ahead + 1)]


def partition_name(table: str, month: date) -> str:
    return f"{table}_y{month.year:04d}m{month.month:02d}"


async def ensure_partitions(conn: Conn, months: list[date]) -> None:
    """Create the monthly partitions of every partitioned table for `months` (first days),
    bounded in the database's time zone-independent UTC instants."""
    for month in months:
        following = add_months(month, 1)
        for table in PARTITIONED:
            # Names and bounds come from dates we computed, never from input: formatting is safe.
            await conn.execute(
                f"CREATE TABLE IF NOT EXISTS {partition_name(table, month)} PARTITION OF {table} "
                f"FOR VALUES FROM ('{month.isoformat()} 00:00:00+00') TO ('{following.isoformat()} 00:00:00+00')")


async def partitions(conn: Conn) -> list[tuple[str, date]]:
    rows = await conn.fetch("SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                            "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = ANY($1::text[])",
                            list(PARTITIONED))
    out = []
    for row in rows:
        match = _PARTITION.match(row["relname"])
        if match:
            out.append((row["relname"], date(int(match[2]), int(match[3]), 1)))
    return sorted(out, key=lambda item: (item[1], item[0]))


async def prune(conn: Conn, today: date, keep_months: int) -> list[str]:
    """Drop the partitions wholly older than the retention (this month counts as one)."""
    cutoff = add_months(month_start(today), -(keep_months - 1))
    dropped = []
    for name, month in await partitions(conn):
        if month < cutoff:
            await conn.execute(f"DROP TABLE IF EXISTS {name}")
            dropped.append(name)
    if dropped:
        await conn.execute("DELETE FROM call_hours WHERE hour < $1", datetime.combine(cutoff, time(), UTC))
    return dropped
