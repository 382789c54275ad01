"""SMS workers: a consumer group on the jobs stream. Nothing accepted is lost, nothing is sent twice.

- A job is acknowledged only once the gateway took it (or it went to the dead letters).
- A worker that dies leaves its jobs pending; another claims them after `claim_idle_s`.
- A failed send stays pending and is retried with doubling delays (at most 5 minutes apart) for
  `retry_window_s` (6 hours), then the job goes to the dead letters (`hotline sms dead`), from
  where `hotline sms requeue` sends it back; a refusal that no retry can cure goes there at once.
- Each job's state is kept by its stream id; a job already sent is never sent again, and a
  retry after a lost gateway reply first looks for a delivery report for that id.
- An attempt whose outcome was never recorded (the worker died mid-send, or a Redis failover
  lost the mark) waits up to `report_wait_s` for the gateway's report before it is sent again.
"""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

import structlog
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import RedisError, ResponseError

from agi.records import OUTBOX_MAX, fact_fields
from hotline.sms.gateway import GatewayError, SmsGateway
from hotline.sms.jobs import Replicas
from hotline_core.keys import RedisKeys
from hotline_core.metrics import Metrics
from hotline_core.numbers import mask_number
from hotline_core.streams import ConsumerGroup, Entry

log = structlog.get_logger("sms")

GROUP = "sms-workers"
SENT_STATES = ("sent", "smsc_ack", "delivered")


# A job's status only moves forward (a late SMSC ack must not undo "delivered", and the worker's
# own "sent" must not undo a report that arrived first), and delivered, failed and dead are final
# (a late "failed" cannot undo "delivered"); counters move once per job. Atomic, so reports
# racing each other and the worker agree.
_ADVANCE = """
local rank = {retrying = 0, sent = 1, smsc_ack = 2, buffered = 2, delivered = 3, failed = 3}
local current = redis.call('HGET', KEYS[1], 'status')
local new = ARGV[1]
if current == 'delivered' or current == 'failed' or current == 'dead' then return current end
if current and (rank[current] or 0) > (rank[new] or 0) then return current end
if current == new then return current end
redis.call('HSET', KEYS[1], 'status', new, new .. '_at', ARGV[2])
if (new == 'delivered' or new == 'failed') and current ~= 'delivered' and current ~= 'failed' then
  redis.call('HINCRBY', KEYS[2], new, 1)
end
if new == 'sent' or ((rank[new] or 0) > 1 and (not current or (rank[current] or 0) < 1)) then
  redis.call('HINCRBY', KEYS[2], 'sent', 1)
end
return new
"""


def retry_delay(attempt: int, base_s: float, cap_s: float = 300.0) -> float:
    """Seconds before attempt `attempt + 1` (pure): doubling from `base_s`, capped."""
    return float(min(cap_s, base_s * 2 ** max(0, attempt - 1)))


class SmsWorker:
    def __init__(self, redis: Redis, gateway: SmsGateway, prefix: str, consumer: str | None = None,
                 max_attempts: int = 1000, retry_base_s: float = 2.0, claim_idle_s: float = 30.0,
                 retry_window_s: float = 6 * 3600,
                 state_ttl_s: int = 7 * 86400, concurrency: int = 16, metrics: Metrics | None = None,
                 replicas: Replicas | None = None, report_wait_s: float = 30.0, batch: int = 20):
        self._redis = redis
        # With Redis replicated, an attempt's start and its outcome are on a replica before the
        # worker goes on, so a failover neither forgets a job nor sends it twice (see in_doubt).
        self._replicas = replicas or Replicas(redis)
        self._report_wait = report_wait_s
        self._metrics = metrics or Metrics()
        self._gateway = gateway
        self.keys = RedisKeys(prefix)
        self.consumer = consumer or f"{socket.gethostname()}-{id(self):x}"
        self._group = ConsumerGroup(redis, self.keys.sms_jobs, GROUP, self.consumer, claim_idle_s, count=batch)
        self._max_attempts = max_attempts
        self._retry_window = retry_window_s  # a gateway away for hours still gets the SMS out
        self._retry_base = retry_base_s
        self._state_ttl = state_ttl_s
        self._slots = asyncio.Semaphore(concurrency)  # sends in flight, bounded (and Redis connections with it)

    async def ensure_group(self) -> None:
        await self._group.ensure()

    async def run(self) -> None:
        """Forever; a Redis outage pauses the worker, nothing is dropped. Jobs waiting for their
        retry are looked at again after `idle_s` when nothing else was sent."""
        await self._group.consume(self.send, "sms worker", idle_s=0.2)

    async def step(self, block_ms: int = 0) -> int:
        """Claim stale jobs, read new ones, process them; returns how many were handled."""
        return await self.send(await self._group.read(block_ms))

    async def send(self, jobs: list[Entry]) -> int:
        # A batch goes to the gateway concurrently: each send waits on the network, not on the CPU.
        # This worker's own jobs waiting for a retry come back each time: each goes when its delay
        # has passed (_process checks), not when idle long enough for a dead worker's to be claimed.
        done = await asyncio.gather(*(self._bounded(job_id, fields) for job_id, fields in jobs))
        return sum(done)

    async def _bounded(self, job_id: str, fields: dict[str, Any]) -> int:
        async with self._slots:
            try:
                return await self._process(job_id, fields)
            except (RedisError, OSError):
                raise  # Redis away: the job stays pending and the step is tried again
            except Exception as exc:  # a job no attempt can process (its fields or state broken)
                # Set aside with the reason rather than retried for ever, holding up the jobs behind it.
                await self._bury(job_id, fields, f"cannot be processed: {type(exc).__name__}: {exc}")
                return 0

    async def _process(self, job_id: str, fields: dict[str, Any]) -> int:
        state_key = self.keys.sms_state(job_id)
        state: dict[str, str] = await self._redis.hgetall(state_key)  # type: ignore[assignment]  # decoded
        if state.get("status") in SENT_STATES or state.get("status") == "dead":
            await self._redis.xack(self.keys.sms_jobs, GROUP, job_id)  # done before; the ack was lost
            return 0
        if float(state.get("next_try", 0)) > time.time():
            return 0  # backing off; it stays pending
        if in_doubt(state, time.time(), self._report_wait):
            return 0  # an attempt of unknown outcome: its delivery report may still say it went
        to, text = fields.get("number", ""), fields.get("text", "")
        attempts = await self._begin_attempt(state_key, fields)
        try:
            await self._gateway.send(job_id, to, text)
        except GatewayError as exc:
            return await self._failed(job_id, fields, attempts, exc)
        await self._done(job_id, "sent")
        log.info("sms sent", job=job_id, number=mask_number(to), attempts=attempts, kind=fields.get("kind"))
        return 1

    async def _begin_attempt(self, state_key: str, fields: dict[str, Any]) -> int:
        """Count the attempt and note when it began, on the replicas too before anything is sent:
        after a failover the new primary then knows the job may have gone out."""
        now = f"{time.time():.3f}"

        async def queue(pipe: Pipeline) -> object:
            pipe.hincrby(state_key, "attempts", 1)
            # Delivery reports name only the job; the call it belongs to is kept with its state.
            pipe.hsetnx(state_key, "first_try", now)
            if fields.get("uniqueid"):
                pipe.hsetnx(state_key, "uniqueid", str(fields["uniqueid"]))
            pipe.hset(state_key, "attempt_at", now)
            return pipe.expire(state_key, self._state_ttl)

        return int(str(await self._replicas.hand_over(queue)))

    async def _failed(self, job_id: str, fields: dict[str, Any], attempts: int, exc: GatewayError) -> int:
        state_key = self.keys.sms_state(job_id)
        first_try = float(await self._redis.hget(state_key, "first_try") or time.time())
        in_window = time.time() - first_try < self._retry_window
        if exc.retryable and in_window and attempts < self._max_attempts:
            delay = retry_delay(attempts, self._retry_base)
            # Through `advance`: a report that already came in (the reply, not the SMS, was lost)
            # keeps its status, and the next attempt sees it and sends nothing.
            await advance(self._redis, self.keys, job_id, "retrying")
            await self._redis.hset(state_key, mapping={"error": str(exc)[:200], "failed_at": f"{time.time():.3f}",
                                                       "next_try": f"{time.time() + delay:.3f}"})
            log.warning("sms not sent; will retry", job=job_id, attempts=attempts, retry_in_s=delay, error=str(exc))
            return 0
        await self._bury(job_id, fields, str(exc), attempts)
        return 0

    async def _bury(self, job_id: str, fields: dict[str, Any], reason: str, attempts: int | None = None) -> None:
        """Into the dead letters with the reason (`hotline sms dead`; `hotline sms requeue` sends
        it again), acknowledged, counted: the alarm on dead letters says it."""
        if fields.get("uniqueid"):
            await record_sms_outcome(self._redis, self.keys, str(fields["uniqueid"]), job_id, "dead")
        async with self._redis.pipeline(transaction=True) as tx:
            dead: dict[Any, Any] = {**fields, "job": job_id, "error": reason[:200],
                                    "attempts": str(attempts) if attempts is not None else "?"}
            tx.xadd(self.keys.sms_dead, dead)
            tx.hset(self.keys.sms_state(job_id), mapping={"status": "dead", "error": reason[:200]})
            tx.hincrby(self.keys.sms_counts, "dead", 1)
            tx.xack(self.keys.sms_jobs, GROUP, job_id)
            await tx.execute()
        self._metrics.sms.labels("dead").inc()
        log.error("sms given up; in the dead letters", job=job_id, attempts=attempts, error=reason[:200])

    async def _done(self, job_id: str, status: str) -> None:
        await advance(self._redis, self.keys, job_id, status, self._metrics)

        async def queue(pipe: Pipeline) -> object:
            return pipe.xack(self.keys.sms_jobs, GROUP, job_id)

        await self._replicas.hand_over(queue)  # the status and the ack, on the replicas too


def in_doubt(state: dict[str, str], now: float, report_wait_s: float) -> bool:
    """Whether an earlier attempt's outcome is unknown and still worth waiting for (pure): it
    began (`attempt_at`) but neither "sent" nor a failure was recorded, because the worker died
    mid-send or a failover lost the mark. The gateway's report (SMSC ack) normally follows a
    send within a second; past `report_wait_s` without one the SMS is taken as never sent."""
    started = float(state.get("attempt_at") or 0)
    if not started or state.get("status", "retrying") != "retrying":
        return False
    if float(state.get("failed_at") or 0) >= started:
        return False  # that attempt is known to have failed
    return now - started < report_wait_s


async def advance(redis: Redis, keys: RedisKeys, job_id: str, status: str, metrics: Metrics | None = None) -> str:
    script = redis.register_script(_ADVANCE)
    result = str(await script(keys=[keys.sms_state(job_id), keys.sms_counts], args=[status, f"{time.time():.3f}"]))
    if result == status and status != "retrying":
        if metrics is not None:
            metrics.sms.labels(status).inc()
        uniqueid = await redis.hget(keys.sms_state(job_id), "uniqueid")
        if uniqueid:
            await record_sms_outcome(redis, keys, str(uniqueid), job_id, status)
    return result


async def record_sms_outcome(redis: Redis, keys: RedisKeys, uniqueid: str, job_id: str, status: str) -> None:
    """Tell the call's durable record what became of its SMS (queued, sent, delivered, failed, dead)."""
    fact: dict[Any, Any] = fact_fields("sms", uniqueid, {"job": job_id, "sms_status": status,
                                                         "at": f"{time.time():.3f}"})
    await redis.xadd(keys.records_outbox, fact, maxlen=OUTBOX_MAX, approximate=True)


async def record_report(redis: Redis, prefix: str, job_id: str, status: int,
                        metrics: Metrics | None = None) -> str | None:
    """A delivery report from the gateway (Kannel: 1 delivered, 2 failed, 4 buffered, 8 SMSC ack,
    16 SMSC reject); None for a job no worker ever sent (nothing is recorded for it)."""
    keys = RedisKeys(prefix)
    if not await redis.exists(keys.sms_state(job_id)):
        return None
    names = {1: "delivered", 2: "failed", 4: "buffered", 8: "smsc_ack", 16: "failed"}
    return await advance(redis, keys, job_id, names.get(status, "smsc_ack"), metrics)


async def status_counts(redis: Redis, prefix: str) -> dict[str, int]:
    keys = RedisKeys(prefix)
    counts = {k: int(v) for k, v in (await redis.hgetall(keys.sms_counts)).items()}
    try:
        pending = await redis.xpending(keys.sms_jobs, GROUP)
        waiting = int(pending.get("pending", 0))
        groups = await redis.xinfo_groups(keys.sms_jobs)
        lag = next((int(g.get("lag") or 0) for g in groups if g.get("name") == GROUP), 0)
    except ResponseError:
        waiting, lag = 0, await redis.xlen(keys.sms_jobs) if await redis.exists(keys.sms_jobs) else 0
    return {"pending": waiting + lag, "sent": counts.get("sent", 0), "delivered": counts.get("delivered", 0),
            "failed": counts.get("failed", 0), "dead": counts.get("dead", 0)}


async def requeue_dead(redis: Redis, prefix: str, entry_ids: list[str] | None = None) -> int:
    """Send dead letters back to the jobs stream (all, or the given ones) as new jobs: for after
    an outage longer than the retry window. Each moves in one transaction: never in both places."""
    keys = RedisKeys(prefix)
    entries: Any = await redis.xrange(keys.sms_dead)
    moved = 0
    for entry_id, fields in entries:
        if entry_ids is not None and entry_id not in entry_ids:
            continue
        job: dict[Any, Any] = {k: fields[k] for k in ("kind", "uniqueid", "number", "text") if k in fields}
        async with redis.pipeline(transaction=True) as tx:
            tx.xadd(keys.sms_jobs, job)
            tx.xdel(keys.sms_dead, entry_id)
            await tx.execute()
        moved += 1
    return moved
