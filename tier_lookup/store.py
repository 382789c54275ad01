"""Tier tables in Redis: the one-round-trip lookup, atomic replace, upsert, delete and stats."""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib import resources

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from tier_lookup.layout import Generation, Keys, bucket_count, bucket_of, decode_values, encode_values

# Redis's own default; used when CONFIG GET is not allowed (managed Redis services).
DEFAULT_LISTPACK_ENTRIES = 128
# Commands per pipeline flush during a bulk write: large enough to amortise round trips,
# small enough to keep the client's buffers modest.
PIPELINE_COMMANDS = 256
LOCK_TTL_MS = 10 * 60 * 1000

_RELEASE_LOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class TableBusy(RuntimeError):
    """Another import of the same table holds its lock."""


@dataclass(frozen=True, slots=True)
class TableStats:
    table: str
    rows: int
    buckets: int
    generation: int
    memory_bytes: int
    imported_at: str
    source: str

    @property
    def bytes_per_row(self) -> float:
        return self.memory_bytes / self.rows if self.rows else 0.0


class TierStore:
    """All Redis I/O of the tier tables. `redis` must decode responses (str in, str out)."""

    def __init__(self, redis: Redis, prefix: str):
        self._redis = redis
        self.keys = Keys(prefix)
        self._lookup = redis.register_script(
            resources.files("tier_lookup").joinpath("lookup.lua").read_text(encoding="utf-8")
        )
        self._release = redis.register_script(_RELEASE_LOCK)

    async def lookup_rows(self, number: str) -> dict[str, dict[str, str]]:
        """Every table holding `number`, with its stored values; one round trip."""
        flat = await self._lookup(keys=[self.keys.pointers], args=[number, self.keys.prefix])
        rows: dict[str, dict[str, str]] = {}
        for i in range(0, len(flat), 3):
            columns = tuple(flat[i + 1].split(",")) if flat[i + 1] else ()
            rows[flat[i]] = decode_values(columns, flat[i + 2])
        return rows

    async def live_generation(self, table: str) -> Generation | None:
        encoded = await self._redis.hget(self.keys.pointers, table)
        return Generation.decode(encoded) if encoded else None

    async def listpack_entries(self) -> int:
        try:
            config = await self._redis.config_get("hash-max-listpack-entries")
        except ResponseError:
            return DEFAULT_LISTPACK_ENTRIES
        value = config.get("hash-max-listpack-entries")
        return int(value) if value else DEFAULT_LISTPACK_ENTRIES

    @asynccontextmanager
    async def table_lock(self, table: str) -> AsyncIterator[None]:
        token = secrets.token_hex(8)
        key = self.keys.lock(table)
        if not await self._redis.set(key, token, nx=True, px=LOCK_TTL_MS):
            raise TableBusy(f"another import of table {table} is running (lock {key}); try again when it ends")
        try:
            yield
        finally:
            await self._release(keys=[key], args=[token])

    async def table_rows(self, table: str) -> int:
        rows = await self._redis.hget(self.keys.info(table), "rows")
        return int(rows) if rows else 0

    async def replace(
        self, table: str, columns: tuple[str, ...], rows: Mapping[str, tuple[str, ...]], source: str
    ) -> Generation:
        """Build a new generation beside the live one and switch to it in one command.

        Call inside `table_lock`. If this is interrupted the pointer never moves and the old table
        keeps serving; the half-built generation is listed under the staging key and removed by the
        next import of the table.
        """
        await self._drop_orphans(table)
        gen = int(await self._redis.incr(self.keys.generation_counter))
        generation = Generation(gen, bucket_count(len(rows), await self.listpack_entries()), columns)
        await self._redis.hset(self.keys.staging(table), str(gen), generation.encode())
        await self._write(table, generation, rows.items())
        old = await self.live_generation(table)
        async with self._redis.pipeline(transaction=True) as tx:
            tx.hset(self.keys.pointers, table, generation.encode())
            tx.hset(self.keys.info(table), mapping=_info(len(rows), source))
            tx.hdel(self.keys.staging(table), str(gen))
            await tx.execute()
        if old is not None:
            await self._unlink(self.keys.buckets(table, old))
        return generation

    async def upsert(
        self, table: str, columns: tuple[str, ...], rows: Mapping[str, tuple[str, ...]], source: str
    ) -> tuple[Generation, int]:
        """Add or overwrite rows in the live generation; returns it and how many rows were new."""
        live = await self.live_generation(table)
        if live is None:
            return await self.replace(table, columns, rows, source), len(rows)
        if columns != live.columns:
            rows = {n: _remap(columns, values, live.columns) for n, values in rows.items()}
        added = await self._write(table, live, rows.items())
        await self._redis.hset(self.keys.info(table), mapping=_info(await self.table_rows(table) + added, source))
        return live, added

    async def delete(self, table: str, numbers: Iterable[str], source: str) -> int:
        """Remove numbers from the live generation; returns how many were present."""
        live = await self.live_generation(table)
        if live is None:
            return 0
        removed = 0
        async with self._redis.pipeline(transaction=False) as pipe:
            pending = 0
            for number in numbers:
                pipe.hdel(self.keys.bucket(table, live.gen, bucket_of(number, live.buckets)), number)
                pending += 1
                if pending >= PIPELINE_COMMANDS:
                    removed += sum(await pipe.execute())
                    pending = 0
            if pending:
                removed += sum(await pipe.execute())
        await self._redis.hset(self.keys.info(table), mapping=_info(await self.table_rows(table) - removed, source))
        return removed

    async def stats(self) -> list[TableStats]:
        pointers = await self._redis.hgetall(self.keys.pointers)
        out = []
        for table in sorted(pointers):
            generation = Generation.decode(pointers[table])
            info = await self._redis.hgetall(self.keys.info(table))
            memory = 0
            async with self._redis.pipeline(transaction=False) as pipe:
                for key in self.keys.buckets(table, generation):
                    pipe.memory_usage(key, samples=0)
                for usage in await pipe.execute():
                    memory += usage or 0
            out.append(
                TableStats(
                    table=table,
                    rows=int(info.get("rows", 0)),
                    buckets=generation.buckets,
                    generation=generation.gen,
                    memory_bytes=memory,
                    imported_at=info.get("imported_at", ""),
                    source=info.get("source", ""),
                )
            )
        return out

    async def _write(self, table: str, generation: Generation, rows: Iterable[tuple[str, tuple[str, ...]]]) -> int:
        """HSET every row into its bucket, one command per bucket chunk; returns fields newly added."""
        grouped: dict[int, list[str]] = {}
        for number, values in rows:
            grouped.setdefault(bucket_of(number, generation.buckets), []).extend((number, encode_values(values)))
        added = 0
        async with self._redis.pipeline(transaction=False) as pipe:
            pending = 0
            for bucket, flat in grouped.items():
                key = self.keys.bucket(table, generation.gen, bucket)
                # Very large buckets (upserts into a small table) are split so no single command is huge.
                for start in range(0, len(flat), 2048):
                    pipe.execute_command("HSET", key, *flat[start : start + 2048])
                    pending += 1
                if pending >= PIPELINE_COMMANDS:
                    added += sum(await pipe.execute())
                    pending = 0
                    await self._redis.pexpire(self.keys.lock(table), LOCK_TTL_MS)
            if pending:
                added += sum(await pipe.execute())
        return added

    async def _drop_orphans(self, table: str) -> None:
        staged = await self._redis.hgetall(self.keys.staging(table))
        for gen, encoded in staged.items():
            await self._unlink(self.keys.buckets(table, Generation.decode(encoded)))
            await self._redis.hdel(self.keys.staging(table), gen)

    async def _unlink(self, keys: list[str]) -> None:
        # UNLINK frees memory in a background thread: dropping a million-row table never blocks lookups.
        for start in range(0, len(keys), 1000):
            await self._redis.unlink(*keys[start : start + 1000])


def _info(rows: int, source: str) -> dict[str, str]:
    return {
        "rows": str(max(rows, 0)),
        "imported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "source": source,
    }


def _remap(columns: tuple[str, ...], values: tuple[str, ...], target: tuple[str, ...]) -> tuple[str, ...]:
    by_name = dict(zip(columns, values, strict=True))
    return tuple(by_name.get(column, "") for column in target)
