"""A consumer of a Redis Stream's consumer group, as the records recorder and the SMS workers
consume theirs: an entry is acknowledged only once it is handled, so nothing read is lost when a
consumer, Redis or what the entries go to fails; a dead consumer's entries are claimed by another
after `claim_idle_s`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from hotline_core.loops import keep_stepping

Entry = tuple[str, dict[str, Any]]  # (stream id, fields)


class ConsumerGroup:
    def __init__(self, redis: Redis, stream: str, group: str, consumer: str, claim_idle_s: float = 30.0,
                 count: int = 500):
        self.redis = redis
        self.stream = stream
        self.group = group
        self.consumer = consumer
        self._claim_idle_ms = int(claim_idle_s * 1000)
        self._count = count

    async def ensure(self) -> None:
        """The group exists (created with its stream; another instance may have made it first)."""
        try:
            await self.redis.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def read(self, block_ms: int = 0) -> list[Entry]:
        """Entries to handle, each once: this consumer's own not yet acknowledged (a failed or
        deferred attempt), those a dead consumer left idle past `claim_idle_s`, and new ones,
        waiting up to `block_ms` for new ones only when there was nothing else."""
        found: dict[str, dict[str, Any]] = {}
        mine: Any = await self.redis.xreadgroup(self.group, self.consumer, {self.stream: "0"}, count=self._count)
        for _stream, entries in mine or []:
            found.update((i, f) for i, f in entries if f)  # no fields: deleted since it was read
        claimed: Any = await self.redis.xautoclaim(self.stream, self.group, self.consumer, self._claim_idle_ms, "0-0",
                                                   count=self._count)
        found.update((i, f) for i, f in claimed[1] if f)
        new: Any = await self.redis.xreadgroup(self.group, self.consumer, {self.stream: ">"}, count=self._count,
                                               block=None if found or not block_ms else block_ms)
        for _stream, entries in new or []:
            found.update((i, f) for i, f in entries if f)
        return list(found.items())

    async def ack(self, ids: list[str], delete: bool = False) -> None:
        async with self.redis.pipeline(transaction=True) as tx:
            tx.xack(self.stream, self.group, *ids)
            if delete:
                tx.xdel(self.stream, *ids)
            await tx.execute()

    async def consume(self, handle: Callable[[list[Entry]], Awaitable[int]], what: str, block_ms: int = 1000,
                      idle_s: float = 0.0) -> None:
        """Forever: read, `handle` (it returns how many it finished; none: wait `idle_s`). Redis or
        what the entries go to away: they stay in the stream, the trouble is said once."""
        ensured = False

        async def step() -> int:
            nonlocal ensured
            if not ensured:  # once, and again after any failure (Redis restarted or flushed: NOGROUP)
                await self.ensure()
                ensured = True
            try:
                return await handle(await self.read(block_ms))
            except Exception:
                ensured = False
                raise

        await keep_stepping(step, f"{what} stalled; retrying", f"{what} flowing again", idle_s=idle_s)
