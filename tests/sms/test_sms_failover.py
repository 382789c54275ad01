"""SMS jobs through a Redis failover with the real worker and Kannel: a primary, a replica and
three sentinels (Debian's redis-sentinel); the primary killed with SIGKILL while jobs are
queued and sent. Every accepted job reaches the SMSC, none twice."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path

import aiohttp
from redis.exceptions import RedisError

from harness.kannel import Kannel, delivered
from harness.redis_sentinel import SERVICE, Sentinels
from harness.waiting import until
from hotline.app import redis_client
from hotline.sms.gateway import KannelGateway
from hotline.sms.jobs import OnceQueue, Replicas, SmsRequest
from hotline.sms.worker import SmsWorker, status_counts
from hotline_core.keys import RedisKeys
from hotline_core.settings import load_settings
from tests.sms.reports_site import reports_site

PREFIX = "smsfail"
TOKEN = "dlr-token"
JOBS = 150


async def test_jobs_survive_the_loss_of_the_primary_and_go_out_once(tmp_path: Path) -> None:
    sentinels = Sentinels(tmp_path / "redis").start()
    (tmp_path / "kannel").mkdir()
    kannel = Kannel(tmp_path / "kannel").start()
    env = {"HOTLINE_REDIS_URL": "redis://127.0.0.1:1/0", "HOTLINE_REDIS_SENTINELS": sentinels.setting,
           "HOTLINE_REDIS_SERVICE": SERVICE}
    redis = redis_client(load_settings(env, {}, None))
    sites = reports_site(redis, PREFIX, TOKEN)
    worker_task: asyncio.Task[None] | None = None
    try:
        port = await anext(sites)
        async with aiohttp.ClientSession() as http:
            dlr = f"http://127.0.0.1:{port}/sms/dlr?id={{id}}&status=%d&token={TOKEN}"
            gateway = KannelGateway(http, kannel.sendsms_url, kannel.username, kannel.password, dlr, timeout_s=2.0)
            replicas = Replicas(redis, 1, wait_ms=200)
            worker = SmsWorker(redis, gateway, PREFIX, "w1", replicas=replicas, retry_base_s=0.2,
                               claim_idle_s=1.0, report_wait_s=5.0)
            await worker.ensure_group()
            worker_task = asyncio.create_task(worker.run())
            once = OnceQueue(redis, PREFIX, replicas=replicas)
            accepted: dict[str, str] = {}  # job id -> text
            refused_tries = 0
            killed_at = 0.0
            began = time.monotonic()
            for i in range(JOBS):  # one job every 30 ms; the primary dies after a third of them
                if i == JOBS // 3:
                    sentinels.kill_primary()
                    killed_at = time.monotonic() - began
                text = f"感谢来电 {i:04d}"
                while True:  # the caller of the API retries until accepted; the marker keeps it once
                    try:
                        job = await once.add(RedisKeys(PREFIX).sms_post_call(f"call-{i}"),
                                             SmsRequest("post_call", f"1.{i}", f"86138{i:08d}", text))
                        break
                    except (RedisError, OSError):
                        refused_tries += 1
                        await asyncio.sleep(0.1)
                if job is not None:
                    accepted[job] = text
                await asyncio.sleep(0.03)
            assert len(accepted) == JOBS, "each job accepted once, whatever the retries"

            async def all_sent() -> dict[str, int] | None:
                try:
                    counts = await status_counts(redis, PREFIX)
                except (RedisError, OSError):
                    return None  # the switch is not over
                return counts if counts.get("pending") == 0 and len(delivered(kannel.delivered_log)) >= JOBS else None

            await until(all_sent, "every job sent", 60, every=0.2)
            await asyncio.sleep(1.0)  # anything sent twice would show by now
        texts = Counter(text for _, text in delivered(kannel.delivered_log))
        twice = sorted(t for t, n in texts.items() if n > 1)
        assert not twice, f"sent twice: {twice}"
        assert set(texts) == set(accepted.values()), "every accepted job reached the SMSC"
        states = [await redis.hget(RedisKeys(PREFIX).sms_state(job), "status") for job in accepted]
        assert all(state in ("sent", "smsc_ack", "delivered") for state in states), Counter(states)
        print(f"SMS through a failover: {JOBS} jobs, primary killed at {killed_at:.1f} s; "
              f"{refused_tries} hand-over tries refused during the switch and retried; "
              f"{len(texts)} reached the SMSC, each once; states {dict(Counter(states))}")
    finally:
        if worker_task is not None:
            worker_task.cancel()
        await sites.aclose()
        await redis.aclose()
        kannel.stop()
        sentinels.stop()
