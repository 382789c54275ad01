"""What a hostile or careless user does, and what flows on behind it (issue: hardening).

Real Redis, PostgreSQL and Kannel on loopback, the service's own components:

1. Staff SMS relay: a handler files orders to premium-rate, foreign and satellite numbers,
   replies with a megabyte, and files past their quota; prints what was refused and why, and
   that every SMS queued is an accepted reply to an allowed number.
2. Poison items: facts the records cannot store among good ones in the outbox, queue_log lines
   no row can hold among a day's lines, SMS jobs whose state cannot be read among good jobs;
   prints what was quarantined or set aside, and that everything behind them was stored or sent.

    .venv/bin/python -m bench.bench_abuse [--facts 10000] [--calls 1000] [--jobs 500]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import uvloop
from aiohttp import web
from redis.asyncio import Redis

from agi.records import CallRecord, fact_fields
from ami_bridge.seating import DeskOf
from harness.kannel import Kannel, delivered
from harness.postgres_server import PostgresServer
from harness.procs import free_tcp_port
from harness.redis_server import RedisServer
from harness.waiting import until
from hotline.app import migrate_records
from hotline.records.ingest import QueueLogReader
from hotline.records.recorder import OutboxRecorder
from hotline.records.store import RecordStore
from hotline.sms.gateway import KannelGateway
from hotline.sms.jobs import OnceQueue, SmsRequest
from hotline.sms.reports import report_routes
from hotline.sms.worker import SmsWorker, status_counts
from hotline.web.access import SignIn
from hotline.web.auth import Sessions
from hotline.web.pages import pages_app
from hotline.workorders.feature import workorders_feature
from hotline_core.keys import RedisKeys
from hotline_core.logs import configure_logging
from hotline_core.metrics import Metrics
from hotline_core.numbers import NumberPlan, number_kind
from hotline_core.policy import load_policy
from hotline_core.redispipe import RedisPipe

T0 = 1796000000  # 2026-11-30, the records' clock in this bench
PREFIX = "abuse"
KEYS = RedisKeys(PREFIX)


async def relay(redis: Redis, pool: asyncpg.Pool[Any], pipe: RedisPipe) -> None:
    policy = load_policy()
    sessions = Sessions(redis, PREFIX)
    await sessions.set_staff("h1", "handler", "handler-secret")
    once = OnceQueue(redis, PREFIX)

    async def send_reply(marker: str, number: str, text: str) -> str | None:
        return await once.add(KEYS.sms_order_reply(marker), SmsRequest("order_reply", "", number, text))

    from agi.records import CallRecords  # the records of calls the orders could name (none here)

    feature = workorders_feature(pool, redis, PREFIX, CallRecords(pipe, PREFIX, 600), policy, NumberPlan(),
                                 lambda: datetime.now(UTC), send_reply)
    runner = web.AppRunner(pages_app(sessions, SignIn(sessions, redis, PREFIX), [feature]), access_log=None)
    await runner.setup()
    port = free_tcp_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    api = f"http://127.0.0.1:{port}/api/workorders"
    refused: Counter[str] = Counter()
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as handler:
        async with handler.post(f"http://127.0.0.1:{port}/login", data={"user": "h1", "secret": "handler-secret"},
                                allow_redirects=False) as reply:
            assert reply.status == 303

        async def post(url: str, body: dict[str, Any]) -> tuple[int, Any]:
            async with handler.post(url, json=body) as answer:
                return answer.status, await answer.json()

        for i in range(200):
            contact = ("+19005550100", "+881612345678", "+447911123456", "+12125550123")[i % 4]
            status, problem = await post(api, {"number": f"139{i:08d}", "category": "bill", "description": "x",
                                               "contact": contact})
            refused[f"{status} {problem['error'].split(':')[0].split(' is a ')[-1][:40]}"] += 1
        orders = []
        for i in range(40):
            status, order = await post(api, {"number": f"138{i:08d}", "category": "bill", "description": "x",
                                             "contact": f"137{i:08d}"})
            assert status == 201, order
            orders.append(order["id"])
            await post(f"{api}/{order['id']}/status", {"status": "dispatched"})
        accepted = 0
        for order_id in orders:
            for text in ("x" * 1_040_000, "退" * 300, "已为您退费。"):
                status, answer = await post(f"{api}/{order_id}/status", {"status": "replied", "reply": text})
                if status == 200:
                    accepted += 1
                else:
                    refused[f"{status} {answer['error'].split(';')[0][:48]}"] += 1
        for i in range(30):  # past the person's quota of orders filed an hour
            status, answer = await post(api, {"number": f"136{i:08d}", "category": "bill", "description": "x"})
            if status != 201:
                refused[f"{status} {answer['error'].split(';')[0][:48]}"] += 1
    jobs = await redis.xrange(KEYS.sms_jobs)
    kinds = Counter(number_kind(fields["number"]) for _, fields in jobs)
    print("staff SMS relay: refused " + ", ".join(f"{n} x [{why}]" for why, n in sorted(refused.items())))
    met = len(jobs) == accepted and set(kinds) <= {("CN", "mobile")}
    print(f"staff SMS relay: {accepted} replies accepted, {len(jobs)} SMS queued, to "
          + ", ".join(f"{n} {kind} numbers of {region}" for (region, kind), n in kinds.items())
          + f" (goal: queued = accepted, all domestic mobiles: {'met' if met else 'NOT met'})")
    await runner.cleanup()
    sessions.close()


def fact(uid: str, number: str, **extra: str) -> dict[str, str]:
    identity = {"number": number, "tier": "normal", "label": "普通", "brand": "easyown", "level": "ordinary_easyown",
                "queue_priority": 10, "skill_chain": ["general"], "matched": [], "degraded": False}
    record = CallRecord(uid, uid, "PJSIP/c", identity, T0 + 1.0, "ivr", lookup_ms=0.4)
    return {**fact_fields("entry", uid, record.to_hash()), **extra}


async def poison(redis: Redis, pool: asyncpg.Pool[Any], facts: int, calls: int, tmp: Path) -> None:
    store = RecordStore(pool)
    metrics = Metrics()
    recorder = OutboxRecorder(redis, PREFIX, store, clock=lambda: datetime.fromtimestamp(T0, UTC), metrics=metrics)
    await recorder.ensure_group()
    bad = 0
    for i in range(facts):
        await redis.xadd(KEYS.records_outbox, fact(f"{T0 + i % 3600}.{i}", f"8613{i:09d}"))  # type: ignore[arg-type]
        if i % 100 == 50:  # one in a hundred: what anyone reaching the FastAGI port can make the call path write
            poisoned = (fact(f"99999999999999.{i}", "8613800000000"),
                        fact(f"{T0}.{i}x", "8613800000000", linkedid="a\x00b"),
                        fact(f"{T0 + 1}.{i}", "86138\x00000000"))[bad % 3]
            await redis.xadd(KEYS.records_outbox, poisoned)  # type: ignore[arg-type]
            bad += 1
    started = time.perf_counter()
    stored = 0
    while (wrote := await recorder.step()) or await redis.xlen(KEYS.records_outbox):
        stored += wrote
    took = time.perf_counter() - started
    quarantined = await pool.fetchval("SELECT count(*) FROM records_quarantine WHERE source = 'outbox'")
    met = stored == facts and quarantined == bad
    print(f"records outbox: {facts:,} good facts and {bad} poison ones: {stored:,} stored, {quarantined} quarantined "
          f"in {took:.2f} s ({facts / took:,.0f} facts/s); outbox left {await redis.xlen(KEYS.records_outbox)} "
          f"(goal: stored = good, quarantined = poison: {'met' if met else 'NOT met'})")

    path = tmp / "queue_log"
    lines, poisoned_lines = [], 0
    for i in range(calls):
        call, at = f"{T0 + i}.{i}", T0 + i
        lines += [f"{at}|{call}|hotline-ordinary_easyown|NONE|ENTERQUEUE||8613{i:09d}|1",
                  f"{at + 3}|{call}|hotline-ordinary_easyown|agent1|CONNECT|3|x|1",
                  f"{at + 40}|{call}|hotline-ordinary_easyown|agent1|COMPLETECALLER|3|37|1"]
        if i % 50 == 25:
            lines.append((f"{at}|{call}|q|NONE|ENTERQUEUE||86\x00138|1", f"99999999999999|{call}|q|NONE|ABANDON|1|1|1",
                          f"{at}|99999999999999.{i}|q|NONE|ENTERQUEUE||861|1")[poisoned_lines % 3])
            poisoned_lines += 1
        if i % 97 == 0:
            lines.append(lines[-2])  # a line written twice
    path.write_text("\n".join(lines) + "\n")

    async def desks() -> DeskOf:
        return lambda _agent: None  # no desks in this bench

    reader = QueueLogReader(store, path, "bench", desks, clock=lambda: datetime.fromtimestamp(T0, UTC))
    started = time.perf_counter()
    read = 0
    while (step := await reader.step()) > 0:
        read += step
    took = time.perf_counter() - started
    held = await pool.fetchval("SELECT count(*) FROM records_quarantine WHERE source = 'bench'")
    answered = await pool.fetchval("SELECT count(*) FROM calls WHERE queue_outcome = 'answered'")
    visits = await pool.fetchval("SELECT count(*) FROM queue_visits")
    print(f"queue_log: {len(lines):,} lines with {poisoned_lines} poison ones: {read:,} stored, {held} quarantined in "
          f"{took:.2f} s; {answered:,} of {calls:,} calls answered, {visits:,} visits (goal: every call answered, one "
          f"visit each: {'met' if answered == calls and visits == calls and held == poisoned_lines else 'NOT met'})")


async def sms(redis: Redis, kannel: Kannel, jobs: int) -> None:
    app = web.Application()
    app.add_routes(report_routes(redis, PREFIX, "t"))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_tcp_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    ids = []
    for i in range(jobs):
        ids.append(await redis.xadd(KEYS.sms_jobs, {"kind": "bench", "uniqueid": str(i), "number": f"86139{i:08d}",
                                                    "text": "您的工单已处理"}))
    broken = ids[::25]
    for job in broken:  # a careless `HSET ... next_try abc`
        await redis.hset(KEYS.sms_state(str(job)), "next_try", "abc")
    async with aiohttp.ClientSession() as session:
        gateway = KannelGateway(session, kannel.sendsms_url, kannel.username, kannel.password,
                                f"http://127.0.0.1:{port}/sms/dlr?id={{id}}&status=%d&token=t")
        worker = SmsWorker(redis, gateway, PREFIX, "w1", batch=50)
        await worker.ensure_group()
        started = time.perf_counter()
        while (await status_counts(redis, PREFIX))["pending"]:
            await worker.step()
        took = time.perf_counter() - started
        await until(lambda: len(delivered(kannel.delivered_log)) >= jobs - len(broken), "the good jobs at the SMSC",
                    60, every=0.2)
    counts = await status_counts(redis, PREFIX)
    at_smsc = len(delivered(kannel.delivered_log))
    good = jobs - len(broken)
    met = at_smsc == good and counts["dead"] == len(broken)
    print(f"SMS worker: {jobs} jobs, {len(broken)} with a broken state: {at_smsc} at the SMSC, {counts['dead']} in "
          f"the dead letters with the reason, in {took:.2f} s (goal: the good ones sent once each, the broken ones "
          f"set aside: {'met' if met else 'NOT met'})")
    await runner.cleanup()


async def run(args: argparse.Namespace, redis_url: str, database_url: str, kannel: Kannel, tmp: Path) -> None:
    redis = Redis.from_url(redis_url, decode_responses=True)
    conn = await asyncpg.connect(database_url)
    await migrate_records(conn, datetime.fromtimestamp(T0, UTC).date())
    await conn.close()
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=4)
    pipe = RedisPipe(redis_url, timeout_s=1.0)
    try:
        await relay(redis, pool, pipe)
        await redis.flushdb()
        await poison(redis, pool, args.facts, args.calls, tmp)
        await sms(redis, kannel, args.jobs)
    finally:
        await pipe.close()
        await pool.close()
        await redis.aclose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--facts", type=int, default=10_000)
    parser.add_argument("--calls", type=int, default=1_000)
    parser.add_argument("--jobs", type=int, default=500)
    args = parser.parse_args()
    configure_logging("critical")
    tmp = Path(tempfile.mkdtemp(prefix="hotline-bench-abuse-"))
    tmp.chmod(0o755)  # the postgres user must reach the cluster inside
    redis = RedisServer(tmp / "redis").start()
    postgres = PostgresServer(tmp / "pg").start()
    (tmp / "kannel").mkdir()
    kannel = Kannel(tmp / "kannel").start()
    try:
        uvloop.run(run(args, redis.url, postgres.url(), kannel, tmp))
    finally:
        kannel.stop()
        postgres.remove()
        redis.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
