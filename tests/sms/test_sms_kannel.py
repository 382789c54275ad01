"""SMS jobs through a real Kannel (bearerbox, smsbox, the fake SMSC) with delivery reports."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from redis.asyncio import Redis

from agi.records import CallRecords
from harness.kannel import Kannel, delivered
from harness.waiting import until
from hotline.sms.gateway import GatewayError, KannelGateway
from hotline.sms.jobs import OnceQueue, SmsJobs, SmsRequest
from hotline.sms.worker import GROUP, SmsWorker, requeue_dead, status_counts
from hotline.workorders.service import WorkOrderService
from hotline.workorders.store import WorkOrders
from hotline_core.keys import RedisKeys
from hotline_core.numbers import NumberPlan
from hotline_core.policy import Policy
from hotline_core.redispipe import RedisPipe
from tests.sms.reports_site import reports_site

TEXT = "尊敬的王站长,如有任何服务疑问,请及时与我们联系,10086将热忱提供支撑。感谢您对江西移动的支持。"
PREFIX = "smstest"
TOKEN = "dlr-token"


@pytest.fixture
def kannel(tmp_path: Path) -> Iterator[Kannel]:
    (tmp_path / "kannel").mkdir()
    gateway = Kannel(tmp_path / "kannel").start()
    yield gateway
    gateway.stop()


@pytest.fixture
async def reports(redis: Redis) -> AsyncIterator[int]:
    async for port in reports_site(redis, PREFIX, TOKEN):
        yield port


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def gateway_for(kannel: Kannel, http: aiohttp.ClientSession, reports: int, password: str | None = None) -> KannelGateway:
    dlr = f"http://127.0.0.1:{reports}/sms/dlr?id={{id}}&status=%d&token={TOKEN}"
    return KannelGateway(http, kannel.sendsms_url, kannel.username, password or kannel.password, dlr, timeout_s=2.0)


async def stepped(worker: SmsWorker, redis: Redis, status: str, count: int) -> bool:
    """One more step of `worker`, then whether `count` jobs have reached `status`."""
    await worker.step()
    return (await status_counts(redis, PREFIX))[status] == count


async def enqueue(redis: Redis, count: int = 1) -> list[str]:
    jobs = SmsJobs(_Pipe(redis), PREFIX)
    return [await jobs.add(SmsRequest("post_call", f"1.{i}", f"861380000{i:04d}", TEXT)) for i in range(count)]


class _Pipe:
    """SmsJobs speaks to the call path's pipelined client; tests hand it redis-py instead."""

    def __init__(self, redis: Redis):
        self._redis = redis

    async def execute(self, *args: str) -> str:
        result = await self._redis.execute_command(*args)
        return str(result)


async def test_chinese_text_arrives_intact_and_its_report_is_recorded(
    redis: Redis, kannel: Kannel, reports: int, http: aiohttp.ClientSession
) -> None:
    [job] = await enqueue(redis)
    worker = SmsWorker(redis, gateway_for(kannel, http, reports), PREFIX, "w1")
    await worker.ensure_group()
    assert await worker.step() == 1
    await until(lambda: _delivered_count(kannel, 1), "1 delivered at the SMSC")
    assert delivered(kannel.delivered_log) == [("8613800000000", TEXT)]
    await until(lambda: _state_is(redis, job, "delivered"), "the job delivered")
    counts = await status_counts(redis, PREFIX)
    assert (counts["pending"], counts["sent"], counts["delivered"], counts["dead"]) == (0, 1, 1, 0)


async def test_gateway_down_then_back_sends_each_exactly_once(
    redis: Redis, kannel: Kannel, reports: int, http: aiohttp.ClientSession
) -> None:
    kannel.stop("smsbox")
    jobs = await enqueue(redis, 3)
    worker = SmsWorker(redis, gateway_for(kannel, http, reports), PREFIX, "w1", retry_base_s=0.2, claim_idle_s=0.2)
    await worker.ensure_group()
    assert await worker.step() == 0  # refused at once: kept pending, nothing lost
    assert (await status_counts(redis, PREFIX))["pending"] == 3
    await asyncio.to_thread(kannel.start_smsbox)
    await until(lambda: stepped(worker, redis, "sent", 3), "3 sent", 9.0, every=0.3)
    await until(lambda: _delivered_count(kannel, 3), "3 delivered at the SMSC")
    await asyncio.sleep(0.5)
    assert sorted(to for to, _ in delivered(kannel.delivered_log)) == [f"861380000{i:04d}" for i in range(3)]
    assert len(jobs) == 3


async def test_a_worker_killed_mid_batch_loses_nothing_and_doubles_nothing(
    redis: Redis, kannel: Kannel, reports: int, http: aiohttp.ClientSession
) -> None:
    await enqueue(redis, 5)
    crashed = SmsWorker(redis, gateway_for(kannel, http, reports), PREFIX, "crashed")
    await crashed.ensure_group()
    # The crashed worker took the batch and died before sending anything.
    await redis.xreadgroup(GROUP, "crashed", {crashed.keys.sms_jobs: ">"}, count=5)
    survivor = SmsWorker(redis, gateway_for(kannel, http, reports), PREFIX, "survivor", claim_idle_s=0.3)
    await asyncio.sleep(0.4)
    assert await survivor.step() == 5
    assert await survivor.step() == 0  # nothing twice
    await until(lambda: _delivered_count(kannel, 5), "5 delivered at the SMSC")
    await asyncio.sleep(0.5)
    assert len(delivered(kannel.delivered_log)) == 5


async def test_a_lost_gateway_reply_is_not_sent_again_once_reported(
    redis: Redis, kannel: Kannel, reports: int, http: aiohttp.ClientSession
) -> None:
    [job] = await enqueue(redis)
    real = gateway_for(kannel, http, reports)

    class ReplyLost:
        async def send(self, job_id: str, to: str, text: str) -> None:
            await real.send(job_id, to, text)
            raise GatewayError("timed out waiting for the reply", retryable=True)

    worker = SmsWorker(redis, ReplyLost(), PREFIX, "w1", retry_base_s=0.1, claim_idle_s=0.2)
    await worker.ensure_group()
    await worker.step()
    await until(lambda: _state_in(redis, job, ("smsc_ack", "delivered")), "the SMSC's report")
    await asyncio.sleep(0.3)
    await worker.step()  # the retry finds the report: acknowledged, not sent again
    await asyncio.sleep(0.5)
    assert len(delivered(kannel.delivered_log)) == 1
    assert (await status_counts(redis, PREFIX))["pending"] == 0


async def test_jobs_that_keep_failing_land_in_the_dead_letters(
    redis: Redis, kannel: Kannel, reports: int, http: aiohttp.ClientSession
) -> None:
    await enqueue(redis)
    worker = SmsWorker(redis, gateway_for(kannel, http, reports, password="wrong"), PREFIX, "w1")
    await worker.ensure_group()
    await worker.step()
    counts = await status_counts(redis, PREFIX)
    assert (counts["pending"], counts["dead"]) == (0, 1)
    [(_, dead)] = await redis.xrange(RedisKeys(PREFIX).sms_dead)
    assert "refused" in dead["error"]


async def _delivered_count(kannel: Kannel, n: int) -> bool:
    return len(delivered(kannel.delivered_log)) >= n


async def _state_is(redis: Redis, job: str, status: str) -> bool:
    return await redis.hget(RedisKeys(PREFIX).sms_state(job), "status") == status


async def _state_in(redis: Redis, job: str, statuses: tuple[str, ...]) -> bool:
    return await redis.hget(RedisKeys(PREFIX).sms_state(job), "status") in statuses


async def test_a_work_order_reply_reaches_the_customer_once_though_the_gateway_was_down(
    redis: Redis, kannel: Kannel, reports: int, http: aiohttp.ClientSession, pipe: RedisPipe,
    records_db: tuple[str, asyncpg.Pool[Any]], policy: Policy,
) -> None:
    once = OnceQueue(redis, PREFIX)

    async def send_reply(marker: str, number: str, text: str) -> str | None:
        return await once.add(RedisKeys(PREFIX).sms_order_reply(marker), SmsRequest("order_reply", "", number, text))

    service = WorkOrderService(WorkOrders(records_db[1]), CallRecords(pipe, PREFIX, 60), policy,
                               NumberPlan("86", "CN"), lambda: datetime.now(UTC), send_reply)
    caller, _ = await service.caller_of(None, "13800000004")
    order, _ = await service.create(caller, {"category": "bill", "description": "多扣了十元"}, "h1", "handler", None)
    await service.move(order["id"], "dispatched", "h1", "handler")
    kannel.stop("smsbox")  # the gateway is down when the handler replies
    await service.move(order["id"], "replied", "h1", "handler", reply="已退还十元")
    await service.send_pending_replies()  # a sweep meanwhile queues nothing more
    worker = SmsWorker(redis, gateway_for(kannel, http, reports), PREFIX, "w1", retry_base_s=0.2, claim_idle_s=0.2)
    await worker.ensure_group()
    assert await worker.step() == 0  # refused: kept pending
    await asyncio.to_thread(kannel.start_smsbox)
    await until(lambda: stepped(worker, redis, "sent", 1), "1 sent", 9.0, every=0.3)
    await until(lambda: _delivered_count(kannel, 1), "1 delivered at the SMSC")
    await asyncio.sleep(1.0)  # time for a second copy to arrive, if one were sent
    assert delivered(kannel.delivered_log) == [
        ("8613800000004", f"您的工单{order['id']}已处理:已退还十元 如有疑问请致电10086。")]


async def test_a_retry_goes_when_its_delay_has_passed_not_when_a_dead_worker_would_be_claimed(
    redis: Redis, kannel: Kannel, reports: int, http: aiohttp.ClientSession
) -> None:
    kannel.stop("smsbox")
    await enqueue(redis)
    # claim_idle_s is the default 30 s: the job must not wait for it.
    worker = SmsWorker(redis, gateway_for(kannel, http, reports), PREFIX, "w1", retry_base_s=0.2)
    await worker.ensure_group()
    assert await worker.step() == 0
    await asyncio.to_thread(kannel.start_smsbox)
    started = asyncio.get_running_loop().time()
    while (await status_counts(redis, PREFIX))["sent"] < 1:
        assert asyncio.get_running_loop().time() - started < 10, "the retry waited for the claim timeout"
        await worker.step()
        await asyncio.sleep(0.2)


async def test_an_outage_longer_than_the_window_ends_in_the_dead_letters_and_requeue_sends_them(
    redis: Redis, kannel: Kannel, reports: int, http: aiohttp.ClientSession
) -> None:
    kannel.stop("smsbox")
    await enqueue(redis, 2)
    worker = SmsWorker(redis, gateway_for(kannel, http, reports), PREFIX, "w1", retry_base_s=0.2,
                       retry_window_s=1.0)
    await worker.ensure_group()
    await until(lambda: stepped(worker, redis, "dead", 2), "2 dead", 4.0, every=0.2)
    assert (await status_counts(redis, PREFIX))["dead"] == 2
    await asyncio.to_thread(kannel.start_smsbox)
    assert await requeue_dead(redis, PREFIX) == 2
    assert await redis.xlen(RedisKeys(PREFIX).sms_dead) == 0
    await until(lambda: stepped(worker, redis, "sent", 2), "2 sent", 6.0, every=0.2)
    await until(lambda: _delivered_count(kannel, 2), "2 delivered at the SMSC")
    assert len(delivered(kannel.delivered_log)) == 2


async def test_a_job_whose_state_cannot_be_read_goes_to_the_dead_letters_and_the_rest_flow_on(
    redis: Redis, kannel: Kannel, reports: int, http: aiohttp.ClientSession
) -> None:
    """What a careless `HSET ... next_try abc` did: one job the worker cannot process. It is set
    aside with the reason, once; the jobs around it are sent; the worker keeps working."""
    jobs = await enqueue(redis, 4)
    await redis.hset(RedisKeys(PREFIX).sms_state(jobs[1]), "next_try", "abc")
    worker = SmsWorker(redis, gateway_for(kannel, http, reports), PREFIX, "w1")
    await worker.ensure_group()
    assert await worker.step() == 3
    [(_, dead)] = await redis.xrange(RedisKeys(PREFIX).sms_dead)
    assert (dead["job"], dead["number"]) == (jobs[1], "8613800000001")
    assert dead["error"] == "cannot be processed: ValueError: could not convert string to float: 'abc'"
    assert await worker.step() == 0  # not tried again
    await until(lambda: _delivered_count(kannel, 3), "the other three at the SMSC")
    assert sorted(n for n, _ in delivered(kannel.delivered_log)) == ["8613800000000", "8613800000002",
                                                                     "8613800000003"]
    counts = await status_counts(redis, PREFIX)
    assert (counts["pending"], counts["dead"]) == (0, 1)
    await enqueue(redis, 1)  # and the next job goes as usual
    assert await worker.step() == 1
