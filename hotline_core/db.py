"""The records database: its schema version, migrations, monthly partitions and retention.

Migrations are the numbered SQL files in `migrations/` (package data), each applied in one
transaction together with its row in `schema_version`, so a failed migration leaves nothing
half done. `hotline db migrate` applies what is missing and may be run any number of times;
`hotline serve` refuses a database whose version is not the one it was built for.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from importlib import resources
from typing import Any, TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

# A connection of our own or one borrowed from a pool: the SQL here takes either.
Conn: TypeAlias = "asyncpg.Connection[Any] | PoolConnectionProxy[Any]"

PARTITIONED = ("calls", "call_details", "queue_log", "queue_visits")
_MIGRATION = re.compile(r"^(\d{3})_([a-z0-9_]+)\.sql$")
_PARTITION = re.compile(r"^(calls|call_details|queue_log|queue_visits)_y(\d{4})m(\d{2})$")
# One number for every instance: only one of them migrates at a time.
_MIGRATE_LOCK = 0x686C6462  # "hldb"


class SchemaError(Exception):
    """The database is not at the schema this code knows."""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


def migrations() -> list[Migration]:
    found = []
    for entry in resources.files("hotline_core").joinpath("migrations").iterdir():
        match = _MIGRATION.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    return sorted(found, key=lambda m: m.version)


def expected_version() -> int:
    return migrations()[-1].version


async def current_version(conn: Conn) -> int:
    exists = await conn.fetchval("SELECT to_regclass('schema_version') IS NOT NULL")
    if not exists:
        return 0
    return int(await conn.fetchval("SELECT coalesce(max(version), 0) FROM schema_version"))


async def migrate(conn: Conn, today: date) -> list[Migration]:
    """Apply the missing migrations, then make sure this month's and the next partitions exist."""
    applied = []
    await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATE_LOCK)
    try:
        await conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version integer PRIMARY KEY, "
                           "name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())")
        version = await current_version(conn)
        if version > expected_version():
            raise SchemaError(f"the database is at schema version {version}, newer than this hotline knows "
                              f"({expected_version()}): upgrade hotline rather than migrate back")
        for migration in migrations():
            if migration.version <= version:
                continue
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute("INSERT INTO schema_version (version, name) VALUES ($1, $2)",
                                   migration.version, migration.name)
            applied.append(migration)
        await ensure_partitions(conn, months_around(today, back=1, ahead=2))
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _MIGRATE_LOCK)
    return applied


async def check_schema(conn: Conn) -> int:
    """The schema version, if it is the one this code knows; SchemaError with what to do otherwise."""
    version = await current_version(conn)
    wanted = expected_version()
    if version < wanted:
        raise SchemaError(f"the records database is at schema version {version}, this hotline needs {wanted}: "
                          f"run `hotline db migrate`")
    if version > wanted:
        raise SchemaError(f"the records database is at schema version {version}, newer than this hotline "
                          f"knows ({wanted}): upgrade hotline")
    return version


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
