"""Copying the records outbox (facts about calls, from Redis) into the records database.

The outbox is a Redis Stream read by a consumer group: an entry is acknowledged and deleted only
after the transaction holding it committed, so a database that is away keeps the facts in Redis
until it is back, and a recorder that dies leaves them to another (claimed after `claim_idle_s`).
Writes are upserts by the call's uniqueid: a fact read twice changes nothing.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg
import structlog
from redis.asyncio import Redis

from hotline.records.facts import BadFact, Fact, read_fact, sane_window
from hotline.records.store import RecordStore
from hotline_core.keys import RedisKeys
from hotline_core.metrics import Metrics
from hotline_core.streams import ConsumerGroup, Entry

log = structlog.get_logger("records.outbox")

GROUP = "recorders"


# What the database says of a row it cannot take (a value out of range, an encoding it refuses,
# a constraint): the fact is at fault, not the database, so it is set aside and the rest flow on.
REFUSED = (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError, asyncpg.ProgramLimitExceededError)


class OutboxRecorder:
    def __init__(self, redis: Redis, prefix: str, store: RecordStore, batch: int = 500, claim_idle_s: float = 30.0,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC), metrics: Metrics | None = None):
        self.consumer = f"{socket.gethostname()}-{os.getpid()}"
        self._group = ConsumerGroup(redis, RedisKeys(prefix).records_outbox, GROUP, self.consumer, claim_idle_s, batch)
        self._store = store
        self._clock = clock
        self._metrics = metrics or Metrics()

    async def _store_or_find(self, facts: list[tuple[Fact, dict[str, Any]]]) -> list[tuple[dict[str, Any], str]]:
        """Store `facts`; when the database refuses the batch (one fact it cannot take fails its
        whole transaction), halve it until the refused ones are found, and return them with why:
        a few refused facts among hundreds cost a few transactions each, not one per fact."""
        if not facts:
            return []
        try:
            await self._store.write_facts([fact for fact, _ in facts])
        except REFUSED as exc:
            if len(facts) == 1:
                return [(facts[0][1], f"the database refused it: {type(exc).__name__}: {exc}")]
            half = len(facts) // 2
            return await self._store_or_find(facts[:half]) + await self._store_or_find(facts[half:])
        return []

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
        """Store a batch; what fails the checks at the edge, or what the database refuses, goes
        to the quarantine with its raw fields and the reason, and the rest is stored."""
        if not entries:
            return 0
        now = self._clock()
        window = sane_window(now)
        facts: list[tuple[Fact, dict[str, Any]]] = []
        refused: list[tuple[dict[str, Any], str]] = []
        for _entry_id, fields in entries:
            try:
                facts.append((read_fact(fields, window), fields))
            except BadFact as exc:
                refused.append((fields, str(exc)))
        found = await self._store_or_find(facts)
        refused += found
        stored = len(facts) - len(found)
        if refused:
            await self._store.quarantine("outbox", refused, now)
            self._metrics.quarantined.labels("records outbox").inc(len(refused))
            for fields, reason in refused:
                log.error("records outbox entry quarantined", uniqueid=str(fields.get("uniqueid", ""))[:40],
                          kind=str(fields.get("kind", ""))[:20], reason=reason[:200])
        await self._group.ack([entry_id for entry_id, _ in entries], delete=True)
        return stored
