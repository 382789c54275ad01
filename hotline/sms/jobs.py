"""SMS requests raised during a call, recorded durably in a Redis Stream for the SMS workers.

The stream is the hand-over point: a request is accepted once XADD has answered, and workers
(a consumer group) deliver from there.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import structlog
from redis.asyncio import Redis

from hotline_core.keys import RedisKeys
from hotline_core.redispipe import RedisPipe

log = structlog.get_logger("sms.jobs")


@dataclass(frozen=True, slots=True)
class SmsRequest:
    kind: str  # "self_service", "post_call", ...
    uniqueid: str
    number: str
    text: str


class SmsJobs:
    def __init__(self, pipe: RedisPipe, prefix: str):
        self._pipe = pipe
        self.stream = RedisKeys(prefix).sms_jobs

    async def add(self, request: SmsRequest) -> str:
        """Record the request; returns its stream id."""
        entry_id: str = await self._pipe.execute(
            "XADD", self.stream, "*", "kind", request.kind, "uniqueid", request.uniqueid, "number", request.number,
            "text", request.text, "created", f"{time.time():.3f}",
        )
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

    def __init__(self, redis: Redis, prefix: str, ttl_s: int = 7 * 86400, replicas: int = 0, wait_ms: int = 100):
        """`replicas`: with Redis replicated (Sentinel), a job counts as accepted once this many
        replicas hold it (WAIT, at most `wait_ms`), so a failover right after cannot lose it."""
        self._redis = redis
        self._keys = RedisKeys(prefix)
        self._ttl = ttl_s
        self._replicas = replicas
        self._wait_ms = wait_ms
        self._script = redis.register_script(_QUEUE_ONCE)

    async def add(self, marker: str, request: SmsRequest) -> str | None:
        """The new job's id, or None when this marker already has its job."""
        keys = [marker, self._keys.sms_jobs]
        args: list[str | int] = [self._ttl, request.kind, request.uniqueid, request.number, request.text]
        if not self._replicas:
            job_id = await self._script(keys=keys, args=args)
        else:
            # WAIT counts this connection's writes: the script and the WAIT go down one connection.
            async with self._redis.pipeline(transaction=False) as pipe:
                await self._script(keys=keys, args=args, client=pipe)
                pipe.wait(self._replicas, self._wait_ms)
                job_id, acked = await pipe.execute()
            if job_id and int(acked) < self._replicas:
                log.warning("sms job on the primary only: no replica confirmed it in time", job=str(job_id),
                            replicas=int(acked), wanted=self._replicas, wait_ms=self._wait_ms)
        return str(job_id) if job_id else None
