"""Copying the records outbox (facts about calls, from Redis) into the records database.

The outbox is a Redis Stream read by a consumer group: an entry is acknowledged and deleted only
after the transaction holding it committed, so a database that is away keeps the facts in Redis
until it is back, and a recorder that dies leaves them to another (claimed after `claim_idle_s`).
Writes are upserts by the call's uniqueid: a fact read twice changes nothing.
"""

from __future__ import annotations

import os
import socket

import structlog
from redis.asyncio import Redis

from hotline.records.facts import BadFact, Fact, read_fact
from hotline.records.store import RecordStore
from hotline_core.keys import RedisKeys
from hotline_core.streams import ConsumerGroup, Entry

log = structlog.get_logger("records.outbox")

GROUP = "recorders"


class OutboxRecorder:
    def __init__(self, redis: Redis, prefix: str, store: RecordStore, batch: int = 500, claim_idle_s: float = 30.0):
        self.consumer = f"{socket.gethostname()}-{os.getpid()}"
        self._group = ConsumerGroup(redis, RedisKeys(prefix).records_outbox, GROUP, self.consumer, claim_idle_s, batch)
        self._store = store

    async def ensure_group(self) -> None:
        await self._group.ensure()

    async def run(self) -> None:
        """Forever; Redis or the database away: the facts wait in Redis, the trouble is said once."""
        await self._group.consume(self.write, "records outbox")

    async def step(self, block_ms: int = 0) -> int:
        """Write one batch (this consumer's unacknowledged entries first: a failed write; then
        entries a dead recorder left, then new ones). Returns the facts written."""
        return await self.write(await self._group.read(block_ms))

    async def write(self, entries: list[Entry]) -> int:
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
        await self._group.ack([entry_id for entry_id, _ in entries], delete=True)
        return len(facts)
