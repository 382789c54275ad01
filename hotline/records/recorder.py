"""Copying the records outbox (facts about calls, from Redis) into the records database.

The outbox is a Redis Stream read by a consumer group: an entry is acknowledged and deleted only
after the transaction holding it committed, so a database that is away keeps the facts in Redis
until it is back, and a recorder that dies leaves them to another (claimed after `claim_idle_s`).
Writes are upserts by the call's uniqueid: a fact read twice changes nothing.
"""

from __future__ import annotations

import os
import socket
from typing import Any

import structlog
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from hotline.records.facts import BadFact, Fact, read_fact
from hotline.records.store import RecordStore
from hotline_core.keys import RedisKeys
from hotline_core.loops import keep_stepping

log = structlog.get_logger("records.outbox")

GROUP = "recorders"


class OutboxRecorder:
    def __init__(self, redis: Redis, prefix: str, store: RecordStore, batch: int = 500, claim_idle_s: float = 30.0):
        self._redis = redis
        self._keys = RedisKeys(prefix)
        self._store = store
        self._batch = batch
        self._claim_idle_ms = int(claim_idle_s * 1000)
        self.consumer = f"{socket.gethostname()}-{os.getpid()}"

    async def ensure_group(self) -> None:
        try:
            await self._redis.xgroup_create(self._keys.records_outbox, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def run(self) -> None:
        """Forever; Redis or the database away: the facts wait in Redis, the trouble is said once."""
        async def step() -> int:
            await self.ensure_group()
            return await self.step(block_ms=1000)

        await keep_stepping(step, "records not written; retrying", "records outbox flowing again")

    async def step(self, block_ms: int = 0) -> int:
        """Write one batch: this consumer's unacknowledged entries first (a failed write), then
        entries a dead recorder left, then new ones. Returns the facts written."""
        stream = self._keys.records_outbox
        reply: Any = await self._redis.xreadgroup(GROUP, self.consumer, {stream: "0"}, count=self._batch)
        entries = [(i, f) for _s, batch in reply or [] for i, f in batch if f]
        if not entries:
            claimed: Any = await self._redis.xautoclaim(stream, GROUP, self.consumer, self._claim_idle_ms, "0-0",
                                                        count=self._batch)
            entries = [(i, f) for i, f in claimed[1] if f]
        if not entries:
            reply = await self._redis.xreadgroup(GROUP, self.consumer, {stream: ">"}, count=self._batch,
                                                 block=block_ms or None)
            entries = [(i, f) for _s, batch in reply or [] for i, f in batch if f]
        if not entries:
            return 0
        facts: list[Fact] = []
        for entry_id, fields in entries:
            try:
                facts.append(read_fact(fields))
            except BadFact as exc:
                log.error("records outbox entry skipped", entry=entry_id, reason=str(exc))
        if facts:
            await self._store.write_facts(facts)
        ids = [entry_id for entry_id, _ in entries]
        async with self._redis.pipeline(transaction=True) as tx:
            tx.xack(stream, GROUP, *ids)
            tx.xdel(stream, *ids)
            await tx.execute()
        return len(facts)
