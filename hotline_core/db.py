"""The records database's shared mechanisms: its pool, the schema version and the one migration
runner for every feature's tables.

Each feature keeps its tables in its own package, as numbered SQL files in `migrations/`
(package data); the numbers form one sequence across features. Each file is applied in one
transaction together with its row in `schema_version`, so a failed migration leaves nothing half
done. `hotline db migrate` applies what is missing and may be run any number of times;
`hotline serve` refuses a database whose version is not the one it was built for.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib import resources
from typing import Any, TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from hotline_core.progress import Progress, silent

# A connection of our own or one borrowed from a pool: the SQL here takes either.
Conn: TypeAlias = "asyncpg.Connection[Any] | PoolConnectionProxy[Any]"

_MIGRATION = re.compile(r"^(\d{3})_([a-z0-9_]+)\.sql$")
# One number for every instance: only one of them migrates at a time.
_MIGRATE_LOCK = 0x686C6462  # "hldb"


class SchemaError(Exception):
    """The database is not at the schema this code knows."""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


def migrations(packages: Sequence[str]) -> list[Migration]:
    """Every feature's migrations (the packages holding them), in one order; a number used twice
    is a mistake of ours, said at once."""
    found: dict[int, Migration] = {}
    for package in packages:
        for entry in resources.files(package).joinpath("migrations").iterdir():
            match = _MIGRATION.match(entry.name)
            if not match:
                continue
            migration = Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8"))
            if migration.version in found:
                raise SchemaError(f"migration {migration.version:03d} exists twice ({package}: {entry.name}, "
                                  f"and {found[migration.version].name})")
            found[migration.version] = migration
    return [found[version] for version in sorted(found)]


def expected_version(packages: Sequence[str]) -> int:
    return migrations(packages)[-1].version


async def current_version(conn: Conn) -> int:
    exists = await conn.fetchval("SELECT to_regclass('schema_version') IS NOT NULL")
    if not exists:
        return 0
    return int(await conn.fetchval("SELECT coalesce(max(version), 0) FROM schema_version"))


async def migrate(conn: Conn, packages: Sequence[str], progress: Progress = silent) -> list[Migration]:
    """Apply the missing migrations of the features whose packages are named (each told to
    `progress` as it is done: one may rewrite a large table)."""
    applied: list[Migration] = []
    known = migrations(packages)
    wanted = known[-1].version
    await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATE_LOCK)
    try:
        await conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version integer PRIMARY KEY, "
                           "name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())")
        version = await current_version(conn)
        if version > wanted:
            raise SchemaError(f"the database is at schema version {version}, newer than this hotline knows "
                              f"({wanted}): upgrade hotline rather than migrate back")
        missing = [m for m in known if m.version > version]
        for migration in missing:
            progress(f"migration {migration.version:03d}_{migration.name}", len(applied), len(missing))
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute("INSERT INTO schema_version (version, name) VALUES ($1, $2)",
                                   migration.version, migration.name)
            applied.append(migration)
            progress(f"migration {migration.version:03d}_{migration.name}", len(applied), len(missing))
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _MIGRATE_LOCK)
    return applied


async def check_schema(conn: Conn, packages: Sequence[str]) -> int:
    """The schema version, if it is the one this code knows; SchemaError with what to do otherwise."""
    version = await current_version(conn)
    wanted = expected_version(packages)
    if version < wanted:
        raise SchemaError(f"the records database is at schema version {version}, this hotline needs {wanted}: "
                          f"run `hotline db migrate`")
    if version > wanted:
        raise SchemaError(f"the records database is at schema version {version}, newer than this hotline "
                          f"knows ({wanted}): upgrade hotline")
    return version


@asynccontextmanager
async def records_pool(url: str, max_size: int, *, eager: bool = False,
                       close_within_s: float = 3.0) -> AsyncIterator[asyncpg.Pool[Any]]:
    """The one way to a pool on the records database. `eager` connects at once (a command, which
    should fail now with a clear line); otherwise connections open when first needed, so a
    database that is away delays the records, never the calls or the start of `hotline serve`."""
    pool: asyncpg.Pool[Any] = asyncpg.create_pool(url, min_size=1 if eager else 0, max_size=max_size,
                                                  command_timeout=30, timeout=5)
    await pool
    try:
        yield pool
    finally:
        try:
            await asyncio.wait_for(pool.close(), close_within_s)  # waits for connections in use
        except TimeoutError:
            pool.terminate()
