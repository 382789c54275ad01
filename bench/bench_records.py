"""Call records at a provincial hotline's scale: 10 million calls over one month in PostgreSQL.

Prints the load rate (COPY of generated call rows, and the real write path: outbox facts plus
queue_log lines through RecordStore), then a month's report by tier and day and by level and
hour, each with its time (goal: under 2 s each).

    python -m bench.bench_records [--calls 10000000]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import asyncpg

from agi.records import CallRecord, fact_fields
from harness.postgres_server import PostgresServer
from hotline.app import migrate_records
from hotline.records.facts import read_fact
from hotline.records.partitions import months_around
from hotline.records.queue_log import QueueLogRow
from hotline.records.report import Period, build_report, fetch_counts, refresh_rollup
from hotline.records.store import RecordStore
from hotline_core.policy import load_policy

MONTH = date(2026, 10, 1)
# (tier, level, weight): levels follow the tier and brand as the access rules give them.
MIX = (("normal", "gotone_vip", 5), ("highend", "highend_easyown", 6), ("highend", "highend_mzone", 4),
       ("newsub", "newsub_easyown", 6), ("newsub", "newsub_mzone", 6), ("campus", "campus", 3),
       ("rural", "ordinary_easyown", 2), ("normal", "ordinary_mzone", 28), ("normal", "ordinary_easyown", 40))
DESKS = ("vip_desk", "highend_desk", "newsub_desk", "general", "general")
SERVICES = ("billing", "topup", "product", "order", "complaints", "general")
COLUMNS = ("started_at", "call_id", "linkedid", "number", "tier", "brand", "level", "queue_priority", "skill_chain",
           "degraded", "ivr_result", "service", "queue", "visits", "queue_outcome", "agent", "desk", "wait_s",
           "talk_s", "sms_status")


def generated(count: int, seed: int) -> list[tuple[object, ...]]:
    rnd = random.Random(seed)
    mix = [(tier, level) for tier, level, _ in MIX]
    weights = [weight for _, _, weight in MIX]
    start = datetime(MONTH.year, MONTH.month, 1, tzinfo=UTC).timestamp()
    rows = []
    for i in range(count):
        at = start + rnd.random() * 30 * 86400
        tier, level = rnd.choices(mix, weights)[0]
        offered = rnd.random() < 0.85
        outcome = (rnd.choices(("answered", "abandoned", "released"), (90, 8, 2))[0] if offered else None)
        answered = outcome == "answered"
        rows.append((
            datetime.fromtimestamp(at, UTC), f"{int(at)}.{i}", f"{int(at)}.{i}", f"86138{rnd.randrange(10**8):08d}",
            tier, "easyown", level, 10, ["highend_desk", "general"], False,
            "transfer" if offered else "hangup", rnd.choice(SERVICES), f"hotline-{level}" if offered else None,
            1 if offered else 0, outcome, f"agent{rnd.randrange(300)}" if answered else None,
            rnd.choice(DESKS) if answered else None, int(rnd.expovariate(1 / 15)) if offered else None,
            int(rnd.expovariate(1 / 80)) if answered else None, None))
    return rows


async def write_path_rate(pool: asyncpg.Pool, calls: int) -> float:
    """Facts and queue_log lines through the code the service runs."""
    store = RecordStore(pool)
    t0 = datetime(MONTH.year, MONTH.month, 2, tzinfo=UTC).timestamp()
    facts, lines = [], []
    for i in range(calls):
        uid = f"{int(t0) + i}.{i}"
        record = CallRecord(uid, uid, "PJSIP/c", {"number": "8613800000001", "tier": "highend", "level":
                            "highend_easyown", "skill_chain": ["highend_desk", "general"]}, t0 + i, "ivr")
        facts.append(read_fact(fact_fields("entry", uid, record.to_hash())))
        at = int(t0) + i
        lines += [QueueLogRow(3 * i, at, uid, "hotline-highend_easyown", "NONE", "ENTERQUEUE", ("", "861", "1")),
                  QueueLogRow(3 * i + 1, at + 3, uid, "hotline-highend_easyown", "agent1", "CONNECT", ("3", "x", "1")),
                  QueueLogRow(3 * i + 2, at + 60, uid, "hotline-highend_easyown", "agent1", "COMPLETECALLER",
                              ("3", "57", "1"))]

    async def desks():  # type: ignore[no-untyped-def]
        return {"agent1": "highend_desk"}.get

    started = time.perf_counter()
    for n in range(0, calls, 500):
        await store.write_facts(facts[n:n + 500])
        await store.add_queue_log("bench", "1:1", lines[3 * n:3 * (n + 500)], 3 * (n + 500), [], await desks())
    return calls / (time.perf_counter() - started)


def make_directory() -> Path:
    directory = Path(tempfile.mkdtemp(prefix="hotline-bench-pg-"))
    directory.chmod(0o755)  # the postgres user must reach the cluster inside
    return directory


async def main(calls: int) -> None:
    policy = load_policy()
    directory = make_directory()
    server = PostgresServer(directory / "cluster").start()
    try:
        conn = await asyncpg.connect(server.url())
        await migrate_records(conn, MONTH)
        pool = await asyncpg.create_pool(server.url(), min_size=1, max_size=4)
        rate = await write_path_rate(pool, 20_000)
        print(f"write path (outbox facts + 3 queue_log lines per call, RecordStore): {rate:,.0f} calls/s")
        await conn.execute("TRUNCATE calls, call_details, queue_log, queue_visits, ingest_checkpoints")
        started = time.perf_counter()
        generate_s = 0.0
        chunk = 250_000
        for n in range(0, calls, chunk):
            g0 = time.perf_counter()
            rows = generated(min(chunk, calls - n), n)
            generate_s += time.perf_counter() - g0
            await conn.copy_records_to_table("calls", records=rows, columns=COLUMNS)
        load_s = time.perf_counter() - started - generate_s
        print(f"load: {calls:,} call rows by COPY in {load_s:.1f} s = {calls / load_s:,.0f} rows/s "
              f"(generating them took {generate_s:.1f} s more)")
        await conn.execute("VACUUM ANALYZE calls")
        size = await conn.fetchval("SELECT pg_size_pretty(sum(pg_total_relation_size(c.oid))) FROM pg_class c "
                                   "JOIN pg_inherits i ON i.inhrelid = c.oid WHERE i.inhparent = 'calls'::regclass")
        months = ", ".join(str(m) for m in months_around(MONTH, 0, 1))
        print(f"calls table: {size} for {calls:,} rows; partitions {months}")
        period = Period.days(MONTH, MONTH + timedelta(days=30), policy)
        # COPY went around the writers, which mark the hours they touch: mark them all, as a
        # month of writes would have, and time the rollup the first report then builds.
        await conn.execute("INSERT INTO dirty_hours SELECT DISTINCT date_trunc('hour', started_at) FROM calls "
                           "ON CONFLICT DO NOTHING")
        t = time.perf_counter()
        hours = await refresh_rollup(conn, policy, period)
        rolled = await conn.fetchval("SELECT count(*) FROM call_hours")
        print(f"rollup: {hours} hours recomputed from the calls in {time.perf_counter() - t:.1f} s "
              f"({rolled:,} rollup rows); later writes recompute only the hours they touch")
        for by in (("tier", "day"), ("level", "hour")):
            times = []
            for _ in range(3):
                t = time.perf_counter()
                report = build_report(await fetch_counts(conn, policy, period, by), by, policy)
                times.append(time.perf_counter() - t)
            offered = sum(r["offered"] for r in report)
            verdict = "met" if max(times) < 2 else "NOT met"
            print(f"report by {','.join(by)}: {len(report)} rows, {offered:,} offered calls, "
                  f"first {times[0]:.2f} s, best {min(times):.2f} s (goal < 2 s: {verdict})")
        await pool.close()
        await conn.close()
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=10_000_000)
    asyncio.run(main(parser.parse_args().calls))
