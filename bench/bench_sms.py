"""SMS throughput through Kannel: jobs per second from the stream to the fake SMSC, none lost.

Queues N jobs, runs W workers (a consumer group) against a real Kannel on loopback, and waits
for every message at the fake SMSC and every delivery report; prints jobs/s and what was lost
or doubled (both must be 0).

    .venv/bin/python bench/bench_sms.py [--jobs 2000] [--workers 4]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import aiohttp
import uvloop
from aiohttp import web
from redis.asyncio import Redis

from harness.kannel import Kannel, delivered
from harness.procs import free_tcp_port
from harness.redis_server import RedisServer
from hotline.sms.gateway import KannelGateway
from hotline.sms.reports import report_routes
from hotline.sms.worker import SmsWorker, status_counts
from hotline_core.logs import configure_logging

TEXT = "尊敬的王站长,如有任何服务疑问,请及时与我们联系,10086将热忱提供支撑。感谢您对江西移动的支持。"


async def run(args: argparse.Namespace, redis_url: str, kannel: Kannel) -> None:
    redis = Redis.from_url(redis_url, decode_responses=True)
    app = web.Application()
    app.add_routes(report_routes(redis, "bench", "t"))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_tcp_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    for i in range(args.jobs):
        await redis.xadd("bench:sms:jobs", {"kind": "bench", "uniqueid": str(i), "number": f"86139{i:08d}",
                                            "text": TEXT})
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100)) as session:
        gateway = KannelGateway(session, kannel.sendsms_url, kannel.username, kannel.password,
                                f"http://127.0.0.1:{port}/sms/dlr?id={{id}}&status=%d&token=t")
        workers = [SmsWorker(redis, gateway, "bench", f"w{i}", claim_idle_s=10, batch=50) for i in range(args.workers)]
        await workers[0].ensure_group()
        started = time.perf_counter()

        async def drain(worker: SmsWorker) -> None:
            while (await status_counts(redis, "bench"))["pending"]:
                await worker.step()

        await asyncio.gather(*(drain(w) for w in workers))
        accepted = time.perf_counter() - started
        for _ in range(600):  # the fake SMSC writes what it received to a file: poll it, 2 minutes at most
            if len(delivered(kannel.delivered_log)) >= args.jobs:
                break
            await asyncio.sleep(0.2)
        at_smsc = time.perf_counter() - started
        for _ in range(600):
            if (await status_counts(redis, "bench"))["delivered"] >= args.jobs:
                break
            await asyncio.sleep(0.2)
    received = Counter(to for to, text in delivered(kannel.delivered_log) if text == TEXT)
    lost = sum(1 for i in range(args.jobs) if received[f"86139{i:08d}"] == 0)
    doubled = sum(1 for n in received.values() if n > 1)
    counts = await status_counts(redis, "bench")
    print(f"{args.jobs} jobs, {args.workers} workers: accepted by Kannel in {accepted:.2f} s = "
          f"{args.jobs / accepted:,.0f} jobs/s; all at the fake SMSC after {at_smsc:.2f} s = "
          f"{args.jobs / at_smsc:,.0f} jobs/s")
    print(f"lost {lost}, doubled {doubled}, text intact {sum(received.values())}/{args.jobs}, "
          f"delivery reports {counts['delivered']}, dead letters {counts['dead']}")
    await runner.cleanup()
    await redis.aclose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    configure_logging("warning")
    with tempfile.TemporaryDirectory(prefix="hotline-bench-sms-") as tmp:
        redis = RedisServer(Path(tmp) / "redis").start()
        (Path(tmp) / "kannel").mkdir()
        kannel = Kannel(Path(tmp) / "kannel").start()
        try:
            uvloop.run(run(args, redis.url, kannel))
        finally:
            kannel.stop()
            redis.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
