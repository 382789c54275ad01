"""Tier tables in Redis: the one-round-trip lookup, atomic replace, upsert, delete and stats."""

from __future__ import annotations

import asyncio
import functools
import os
import secrets
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from itertools import chain
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from hotline_core.keys import RedisKeys
from hotline_core.loops import hand_over
from hotline_core.redispipe import pack_command
from tier_lookup.layout import Generation, bucket_count, bucket_keys, bucket_of, remap_value
from tier_lookup.reader import LOOKUP_SCRIPT, decode_lookup

# Redis's own default; used when CONFIG GET is not allowed (managed Redis services).
DEFAULT_LISTPACK_ENTRIES = 128
# Commands per pipeline flush during a bulk write: large enough to amortise round trips,
# small enough to keep the client's buffers modest.
PIPELINE_COMMANDS = 256
LOCK_TTL_MS = 10 * 60 * 1000
CHUNK_ROWS = 1024  # rows per HSET at most: large writes stay bounded per command

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

    @property
    def imported(self) -> datetime | None:
        """`imported_at` (stored as `...Z`) as an aware time; None if never imported."""
        return datetime.fromisoformat(self.imported_at.replace("Z", "+00:00")) if self.imported_at else None


class TierStore:
    """All Redis I/O of the tier tables. `redis` must decode responses (str in, str out)."""

    def __init__(self, redis: Redis, prefix: str):
        self._redis = redis
        self.keys = RedisKeys(prefix)
        self._lookup = redis.register_script(LOOKUP_SCRIPT)
        self._release = redis.register_script(_RELEASE_LOCK)

    async def lookup_rows(self, number: str) -> dict[str, dict[str, str]]:
        """Every table holding `number`, with its stored values; one round trip."""
        return decode_lookup(await self._ask(number))

    def lookup_then(self, number: str, handler: Callable[[Any], None]) -> None:
        """The lookup script's flat reply for `number`, to `handler` (a RowSource, over redis-py)."""
        asyncio.ensure_future(self._ask(number)).add_done_callback(functools.partial(hand_over, handler))

    def _ask(self, number: str) -> Awaitable[Any]:
        return self._lookup(keys=[self.keys.tables], args=[number, self.keys.bucket_stem])

    async def live_generation(self, table: str) -> Generation | None:
        encoded = await self._redis.hget(self.keys.tables, table)
        return Generation.decode(_text(encoded)) if encoded else None

    async def buckets_for(self, table: str, mode_replace: bool, row_estimate: int) -> int:
        """How many buckets rows must be grouped in: a new generation is sized for its rows,
        an upsert or delete goes into the live generation's buckets."""
        live = None if mode_replace else await self.live_generation(table)
        if live is not None:
            return live.buckets
        return bucket_count(row_estimate, await self.listpack_entries())

    async def listpack_entries(self) -> int:
        try:
            config = await self._redis.config_get("hash-max-listpack-entries")
        except ResponseError:
            return DEFAULT_LISTPACK_ENTRIES
        value = config.get("hash-max-listpack-entries")
        return int(value) if value else DEFAULT_LISTPACK_ENTRIES

    @asynccontextmanager
    async def table_lock(self, table: str) -> AsyncIterator[None]:
        """Only one import of a table at a time. The lock names its holder and expires on its
        own if the holder dies; `unlock` clears it at once after a killed import."""
        holder = f"{socket.gethostname()} pid {os.getpid()} since {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}"
        token = f"{secrets.token_hex(8)} {holder}"
        key = self.keys.table_lock(table)
        if not await self._redis.set(key, token, nx=True, px=LOCK_TTL_MS):
            current = _text(await self._redis.get(key) or "? unknown holder")
            raise TableBusy(
                f"another import of table {table} is running ({current.split(' ', 1)[-1]}); try again when it "
                f"ends, or if that import was killed run: hotline tiers unlock {table}"
            )
        try:
            yield
        finally:
            await self._release(keys=[key], args=[token])

    async def unlock(self, table: str) -> bool:
        return bool(await self._redis.delete(self.keys.table_lock(table)))

    async def table_rows(self, table: str) -> int:
        rows = await self._redis.hget(self.keys.table_info(table), "rows")
        return int(rows) if rows else 0

    async def stage(self, table: str, columns: tuple[str, ...], buckets: int) -> Generation:
        """A new, empty generation beside the live one, listed under the staging key until it is
        published or discarded (a killed import's is removed by the next import of the table).
        Call inside `table_lock`."""
        await self._drop_orphans(table)
        gen = int(await self._redis.incr(self.keys.generation_counter))
        generation = Generation(gen, buckets, columns)
        await self._redis.hset(self.keys.table_staging(table), str(gen), generation.encode())
        return generation

    async def write(self, table: str, generation: Generation, buckets: Iterable[tuple[int, list[str]]]) -> int:
        """HSET rows into a staged generation, given per bucket index as flat (number, value, ...)
        lists with no number twice; returns how many fields were new."""
        step = 2 * CHUNK_ROWS
        commands = (("HSET", self.keys.table_bucket(table, generation.gen, index), *pairs[start : start + step])
                    for index, pairs in buckets
                    for start in range(0, len(pairs), step))
        replies = await self._send_raw(commands, refresh_lock=self.keys.table_lock(table))
        return sum(int(r) for r in replies)  # type: ignore[call-overload]

    async def publish(self, table: str, generation: Generation, rows: int, source: str) -> None:
        """Switch the table to a staged generation in one command; the old one is freed."""
        old = await self.live_generation(table)
        async with self._redis.pipeline(transaction=True) as tx:
            tx.hset(self.keys.tables, table, generation.encode())
            tx.hset(self.keys.table_info(table), mapping=_info(rows, source))
            tx.hdel(self.keys.table_staging(table), str(generation.gen))
            await tx.execute()
        if old is not None:
            await self._unlink(bucket_keys(self.keys, table, old))

    async def discard(self, table: str, generation: Generation) -> None:
        """Drop a staged generation that will not be published (a refused import)."""
        await self._unlink(bucket_keys(self.keys, table, generation))
        await self._redis.hdel(self.keys.table_staging(table), str(generation.gen))

    async def replace(
        self, table: str, columns: tuple[str, ...], buckets: Sequence[Mapping[str, str]], source: str
    ) -> Generation:
        """Build a new generation beside the live one and switch to it in one command.

        `buckets` holds the rows already grouped by `bucket_of(number, len(buckets))`.

        Call inside `table_lock`. If this is interrupted the pointer never moves and the old table
        keeps serving; the half-built generation is listed under the staging key and removed by the
        next import of the table.
        """
        generation = await self.stage(table, columns, len(buckets))
        rows = await self._write(table, generation, enumerate(buckets))
        await self.publish(table, generation, rows, source)
        return generation

    async def upsert(
        self, table: str, columns: tuple[str, ...], buckets: Sequence[Mapping[str, str]], source: str
    ) -> tuple[Generation, int]:
        """Add or overwrite rows in the live generation; returns it and how many rows were new.

        `buckets` must be grouped for the live generation's bucket count (see `buckets_for`).
        """
        live = await self.live_generation(table)
        if live is None:
            return await self.replace(table, columns, buckets, source), sum(map(len, buckets))
        if len(buckets) != live.buckets:
            raise ValueError(f"rows grouped in {len(buckets)} buckets, the live table has {live.buckets}")
        if columns != live.columns:
            buckets = [{n: remap_value(columns, v, live.columns) for n, v in b.items()} for b in buckets]
        added = await self._write(table, live, enumerate(buckets))
        await self._redis.hset(self.keys.table_info(table), mapping=_info(await self.table_rows(table) + added, source))
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
                pipe.hdel(self.keys.table_bucket(table, live.gen, bucket_of(number, live.buckets)), number)
                pending += 1
                if pending >= PIPELINE_COMMANDS:
                    removed += sum(await pipe.execute())
                    pending = 0
            if pending:
                removed += sum(await pipe.execute())
        rows = await self.table_rows(table) - removed
        await self._redis.hset(self.keys.table_info(table), mapping=_info(rows, source))
        return removed

    async def stats(self) -> list[TableStats]:
        pointers = await self._hgetall(self.keys.tables)
        out = []
        for table in sorted(pointers):
            generation = Generation.decode(pointers[table])
            info = await self._hgetall(self.keys.table_info(table))
            memory = 0
            async with self._redis.pipeline(transaction=False) as pipe:
                for key in bucket_keys(self.keys, table, generation):
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

    async def _write(self, table: str, generation: Generation, buckets: Iterable[tuple[int, Mapping[str, str]]]) -> int:
        """`write` for rows grouped as number -> value per bucket."""
        return await self.write(table, generation, ((index, list(chain.from_iterable(rows.items())))
                                                    for index, rows in buckets if rows))

    async def _send_raw(self, commands: Iterable[tuple[str, ...]], refresh_lock: str) -> list[object]:
        """Pipeline commands on one connection, packed in C by hiredis.

        redis-py's asyncio pipeline packs arguments in Python, which costs more than parsing the CSV.
        One batch stays in flight: the next is packed and sent while Redis works on the previous.
        Each batch ends with a PEXPIRE that keeps the table lock alive through long imports.
        """
        pool = self._redis.connection_pool
        conn = await pool.get_connection()  # type: ignore[no-untyped-call]
        keepalive = pack_command(("PEXPIRE", refresh_lock, str(LOCK_TTL_MS)))
        replies: list[object] = []
        in_flight = 0

        async def collect(count: int) -> None:
            for _ in range(count):
                reply = await conn.read_response()
                if isinstance(reply, ResponseError):
                    raise reply
                replies.append(reply)
            replies.pop()  # the PEXPIRE's reply

        try:
            batch: list[bytes] = []
            for command in commands:
                batch.append(pack_command(command))
                if len(batch) == PIPELINE_COMMANDS:
                    batch.append(keepalive)
                    await conn.send_packed_command(b"".join(batch), check_health=False)
                    if in_flight:
                        await collect(in_flight)
                    in_flight, batch = len(batch), []
            if batch:
                batch.append(keepalive)
                await conn.send_packed_command(b"".join(batch), check_health=False)
            if in_flight:
                await collect(in_flight)
            if batch:
                await collect(len(batch))
        except BaseException:
            # A half-read pipeline leaves replies on the socket; never hand that connection back.
            await conn.disconnect()
            raise
        finally:
            await pool.release(conn)
        return replies

    async def _hgetall(self, key: str) -> dict[str, str]:
        return {_text(k): _text(v) for k, v in (await self._redis.hgetall(key)).items()}

    async def _drop_orphans(self, table: str) -> None:
        staged = await self._hgetall(self.keys.table_staging(table))
        for gen, encoded in staged.items():
            await self._unlink(bucket_keys(self.keys, table, Generation.decode(encoded)))
            await self._redis.hdel(self.keys.table_staging(table), gen)

    async def _unlink(self, keys: list[str]) -> None:
        # UNLINK frees memory in a background thread: dropping a million-row table never blocks lookups.
        for start in range(0, len(keys), 1000):
            await self._redis.unlink(*keys[start : start + 1000])


def _text(value: bytes | str) -> str:
    # The client decodes responses; this only narrows redis-py's bytes-or-str annotations.
    return value.decode() if isinstance(value, bytes) else value


def _info(rows: int, source: str) -> dict[Any, Any]:
    return {
        "rows": str(max(rows, 0)),
        "imported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "source": source,
    }
