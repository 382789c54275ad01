"""SMS requests raised during a call, recorded durably in a Redis Stream for the SMS workers.

The stream is the hand-over point: a request is accepted once XADD has answered, and workers
(a consumer group) deliver from there.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import structlog
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from hotline_core.keys import RedisKeys
from hotline_core.redispipe import RedisPipe

log = structlog.get_logger("sms.jobs")


@dataclass(frozen=True, slots=True)
class SmsRequest:
    kind: str  # "self_service", "post_call", ...
    uniqueid: str
    number: str
    text: str


@dataclass(slots=True)
class Replicas:
    """How many replicas must hold a job before it counts as accepted (WAIT, at most `wait_ms`):
    with Redis replicated (Sentinel), a failover right after the hand-over cannot lose it."""

    redis: Redis
    count: int = 0
    wait_ms: int = 100
    # No replica confirming (the replica is gone or became the primary): logged once per episode,
    # not at every write.
    short: bool = field(default=False, init=False)

    async def hand_over(self, queue: Callable[[Pipeline], Awaitable[object]]) -> object:
        """Run what `queue` puts on a pipeline, then WAIT on the same connection (WAIT counts
        the writes of the connection it is sent on, and replication keeps their order, so every
        earlier write is covered too); the first command's reply. No WAIT when `count` is 0."""
        async with self.redis.pipeline(transaction=False) as pipe:
            await queue(pipe)
            if not self.count:
                return (await pipe.execute())[0]
            pipe.wait(self.count, self.wait_ms)
            *replies, acked = await pipe.execute()
        if int(acked) < self.count and not self.short:
            log.warning("sms writes on the primary only: no replica confirms them in time (logged once until "
                        "one does)", replicas=int(acked), wanted=self.count, wait_ms=self.wait_ms)
        elif int(acked) >= self.count and self.short:
            log.info("sms writes confirmed by replicas again", replicas=int(acked))
        self.short = int(acked) < self.count
        return replies[0]


class SmsJobs:
    """Self-service SMS requests, on the call path's pipe; with `replicas`, handed over through
    the service's client instead, so the WAIT does not hold the pipe's lookups back."""

    def __init__(self, pipe: RedisPipe, prefix: str, replicas: Replicas | None = None):
        self._pipe = pipe
        self._replicas = replicas if replicas and replicas.count else None
        self.stream = RedisKeys(prefix).sms_jobs

    async def add(self, request: SmsRequest) -> str:
        """Record the request; returns its stream id."""
        fields = ("kind", request.kind, "uniqueid", request.uniqueid, "number", request.number, "text", request.text,
                  "created", f"{time.time():.3f}")
        if self._replicas is not None:
            async def queue(pipe: Pipeline) -> object:
                return pipe.execute_command("XADD", self.stream, "*", *fields)

            return str(await self._replicas.hand_over(queue))
        entry_id: str = await self._pipe.execute("XADD", self.stream, "*", *fields)
        return entry_id


# Queue the job only if nothing was queued under this marker yet, in one atomic step: a crash
# can neither leave a marker without its job nor queue the job twice.
_QUEUE_ONCE = """
if redis.call('SET', KEYS[1], 'queued', 'NX', 'EX', ARGV[1]) then
  local id = redis.call('XADD', KEYS[2], '*', 'kind', ARGV[2], 'uniqueid', ARGV[3], 'number', ARGV[4],
                        'text', ARGV[5])
  redis.call('SET', KEYS[1], id, 'EX', ARGV[1])
  return id
end
return false
"""


class OnceQueue:
    """SMS jobs that must go out exactly once per marker (a call's thank-you, an order's reply),
    however often the event that asks for them repeats and however many instances hear it."""

    def __init__(self, redis: Redis, prefix: str, ttl_s: int = 7 * 86400, replicas: Replicas | None = None):
        self._keys = RedisKeys(prefix)
        self._ttl = ttl_s
        self._replicas = replicas if replicas and replicas.count else None
        self._script = redis.register_script(_QUEUE_ONCE)

    async def add(self, marker: str, request: SmsRequest) -> str | None:
        """The new job's id, or None when this marker already has its job."""
        keys = [marker, self._keys.sms_jobs]
        args: list[str | int] = [self._ttl, request.kind, request.uniqueid, request.number, request.text]
        if self._replicas is None:
            job_id = await self._script(keys=keys, args=args)
        else:
            async def queue(pipe: Pipeline) -> object:
                return await self._script(keys=keys, args=args, client=pipe)

            job_id = await self._replicas.hand_over(queue)
        return str(job_id) if job_id else None
