"""Agents' KPIs and the report by agent over three months of a provincial hotline's records:
10 million calls a month, 300 agents (goal: `hotline agents kpis` and `hotline report --by agent`
each under 2 s).

The calls are generated inside PostgreSQL (generate_series, a fixed seed): 85% ask for an agent,
90% of those are answered by one of 300 agents, a third of the answered are offered the survey
and three quarters of those answer it, and each answered call carries its first-contact verdict
as the rollup's writer would have given it (the writer's own rate is measured apart, on one hour
of undecided calls). The rollups are then built by the real writer (refresh_rollup), and both
commands are run as an operator runs them (the CLI, against this database and a Redis holding a
300-agent roster), each timed end to end, beside the query alone.

    python -m bench.bench_kpis [--calls-per-month 10000000] [--months 3] [--agents 300]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import asyncpg
from tqdm import tqdm

from ami_bridge.roster import Agent
from harness.postgres_server import PostgresServer
from harness.redis_server import RedisServer
from hotline.app import migrate_records
from hotline.records.kpis import agent_kpis
from hotline.records.partitions import ensure_partitions, months_around
from hotline.records.report import Period, build_report, decide_fcr, fetch_counts, refresh_rollup
from hotline_core.policy import load_policy

FIRST = date(2026, 9, 1)
CHUNK = 1_000_000
HOTLINE = str(Path(sys.executable).parent / "hotline")

# One chunk of calls, all drawn from random() after setseed: $1 the first call's index, $2 how
# many, $3 the period's start (epoch), $4 its length in seconds, $5 the number of agents.
_GENERATE = """
INSERT INTO calls (started_at, call_id, linkedid, number, tier, brand, level, queue_priority, skill_chain, degraded,
                   ivr_result, service, queue, visits, queue_outcome, agent, desk, wait_s, talk_s,
                   survey_result, survey, survey_label, survey_satisfied, survey_agent, fcr)
SELECT to_timestamp(at), at::bigint || '.' || g, at::bigint || '.' || g,
       '86138' || lpad((r_num * 1e8)::bigint::text, 8, '0'),
       'normal', 'easyown', 'ordinary_easyown', 10, ARRAY['general'], false,
       CASE WHEN offered THEN 'transfer' ELSE 'hangup' END, 'billing',
       CASE WHEN offered THEN 'hotline-ordinary_easyown' END, CASE WHEN offered THEN 1 ELSE 0 END,
       outcome, CASE WHEN outcome = 'answered' THEN 'agent' || floor(r_agent * $5)::int END,
       CASE WHEN outcome = 'answered' THEN 'general' END,
       CASE WHEN offered THEN (r_wait * 40)::int END, CASE WHEN outcome = 'answered' THEN (60 + r_talk * 60)::int END,
       survey_result, CASE WHEN survey_result = 'answered' THEN key END,
       CASE WHEN survey_result = 'answered' THEN (ARRAY['满意', '一般', '不满意'])[key::int] END,
       CASE WHEN survey_result = 'answered' THEN key = '1' END,
       CASE WHEN survey_result IS NOT NULL THEN 'agent' || floor(r_agent * $5)::int END,
       CASE WHEN outcome = 'answered' THEN r_fcr < 0.87 END
FROM (
    SELECT g, $3 + random() * $4 AS at, random() AS r_num, random() < 0.85 AS offered, random() AS r_out,
           random() AS r_agent, random() AS r_wait, random() AS r_talk, random() AS r_survey, random() AS r_fcr,
           (1 + floor(random() * 3))::int::text AS key
    FROM generate_series($1::bigint, $1::bigint + $2 - 1) AS g
) drawn
CROSS JOIN LATERAL (SELECT CASE WHEN NOT offered THEN NULL WHEN r_out < 0.90 THEN 'answered'
                                WHEN r_out < 0.98 THEN 'abandoned' ELSE 'released' END AS outcome) o
CROSS JOIN LATERAL (SELECT CASE WHEN o.outcome <> 'answered' OR r_survey >= 1.0 / 3 THEN NULL
                                WHEN r_survey < 0.25 THEN 'answered' WHEN r_survey < 0.29 THEN 'no answer'
                                ELSE 'hung up' END AS survey_result) s
"""


def roster(agents: int) -> str:
    lines = ["agent_id,name,interface,skills,tenure_start,satisfaction,first_contact_resolution"]
    lines += [f"agent{i},坐席{i},PJSIP/agent{i},,2022-01-01,96%,88%" for i in range(agents)]
    return "\n".join(lines) + "\n"


def timed_cli(env: dict[str, str], *args: str) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run([HOTLINE, *args], env=env, capture_output=True, text=True, check=True, timeout=600)
    return time.perf_counter() - started, done.stdout


def scratch() -> Path:
    directory = Path(tempfile.mkdtemp(prefix="hotline-bench-kpis-"))
    directory.chmod(0o755)  # the postgres user must reach the cluster inside
    return directory


def import_roster(env: dict[str, str], directory: Path, agents: int) -> None:
    (directory / "agents.csv").write_text(roster(agents), encoding="utf-8")
    subprocess.run([HOTLINE, "agents", "import", str(directory / "agents.csv")], env=env, check=True,
                   capture_output=True)


async def main(per_month: int, months: int, agents: int) -> None:
    policy = load_policy()
    directory = scratch()
    server = PostgresServer(directory / "cluster").start()
    redis = RedisServer(directory / "redis").start()
    try:
        conn = await asyncpg.connect(server.url(), command_timeout=3600)
        await migrate_records(conn, FIRST)
        firsts = months_around(FIRST, 0, months)
        await ensure_partitions(conn, firsts)
        await conn.execute("SELECT setseed(0.42)")
        started = time.perf_counter()
        total = per_month * months
        with tqdm(total=total, unit="call", unit_scale=True, desc="generating calls", disable=None) as bar:
            for index, first in enumerate(firsts[:months]):
                start = datetime(first.year, first.month, 1, tzinfo=UTC)
                length = (datetime(firsts[index + 1].year, firsts[index + 1].month, 1, tzinfo=UTC) - start)
                for n in range(0, per_month, CHUNK):
                    size = min(CHUNK, per_month - n)
                    await conn.execute(_GENERATE, index * per_month + n, size, start.timestamp(),
                                       length.total_seconds(), agents)
                    bar.update(size)
        load_s = time.perf_counter() - started
        await conn.execute("VACUUM ANALYZE calls")
        size_text = await conn.fetchval(
            "SELECT pg_size_pretty(sum(pg_total_relation_size(c.oid))) FROM pg_class c "
            "JOIN pg_inherits i ON i.inhrelid = c.oid WHERE i.inhparent = 'calls'::regclass")
        print(f"load: {total:,} calls over {months} months generated in PostgreSQL in {load_s:.0f} s "
              f"({total / load_s:,.0f} rows/s); calls table {size_text}")
        last = firsts[months] - timedelta(days=1)
        period = Period.days(firsts[0], last, policy)
        await conn.execute("INSERT INTO dirty_hours SELECT DISTINCT date_trunc('hour', started_at) FROM calls "
                           "ON CONFLICT DO NOTHING")
        t = time.perf_counter()
        hours = await refresh_rollup(conn, policy, period)
        rows = await conn.fetchval("SELECT count(*) FROM agent_hours")
        print(f"rollup: {hours:,} hours rebuilt by the writer in {time.perf_counter() - t:.0f} s "
              f"({rows:,} agent_hours rows)")
        # The writer's verdicts: one hour of answered calls made undecided again, then decided.
        hour = datetime(firsts[0].year, firsts[0].month, 15, 10, tzinfo=UTC)
        undecided = await conn.fetchval(
            "WITH u AS (UPDATE calls SET fcr = NULL WHERE started_at >= $1 AND started_at < $2 "
            "AND queue_outcome = 'answered' RETURNING 1) SELECT count(*) FROM u", hour, hour + timedelta(hours=1))
        t = time.perf_counter()
        await decide_fcr(conn, policy, hour - timedelta(hours=1), hour + timedelta(days=30))
        decide_s = time.perf_counter() - t
        print(f"first-contact verdicts: {undecided:,} answered calls of one hour decided in {decide_s:.2f} s "
              f"({undecided / decide_s:,.0f} calls/s; a hotline of 10 million calls a month answers ~4 a second)")
        await refresh_rollup(conn, policy, period)

        team = [Agent(f"agent{i}", f"坐席{i}", f"PJSIP/agent{i}", (), date(2022, 1, 1), 0.96, 0.88)
                for i in range(agents)]
        for name, by in (("agents kpis", ("agent",)), ("report --by agent", ("agent",))):
            times = []
            for _ in range(3):
                t = time.perf_counter()
                counted = await fetch_counts(conn, policy, period, by)
                out = (agent_kpis(counted, team, policy, last) if name == "agents kpis"
                       else build_report(counted, by, policy))
                times.append(time.perf_counter() - t)
            print(f"{name}, the query and figures alone: {len(out)} rows, best {min(times):.2f} s, "
                  f"first {times[0]:.2f} s")
        env = {**os.environ, "HOTLINE_DATABASE_URL": server.url(), "HOTLINE_REDIS_URL": redis.url,
               "HOTLINE_FROZEN_TIME": f"{last}T23:00:00+08:00"}
        await asyncio.to_thread(import_roster, env, directory, agents)
        answered = await conn.fetchval("SELECT count(*) FROM calls WHERE queue_outcome = 'answered'")
        for args in (("agents", "kpis", "--format", "json"),
                     ("report", "--by", "agent", "--from", str(firsts[0]), "--to", str(last), "--format", "json")):
            runs = [await asyncio.to_thread(timed_cli, env, *args) for _ in range(3)]
            seconds = [s for s, _ in runs]
            verdict = "met" if max(seconds) < 2 else "NOT met"
            print(f"hotline {' '.join(args[:3] if args[0] == 'report' else args[:2])}: {answered:,} answered calls "
                  f"of {total:,}, {len(runs[0][1]):,} bytes of JSON, whole command best {min(seconds):.2f} s, "
                  f"worst {max(seconds):.2f} s (goal < 2 s: {verdict})")
        await conn.close()
    finally:
        redis.stop()
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls-per-month", type=int, default=10_000_000)
    parser.add_argument("--months", type=int, default=3)
    parser.add_argument("--agents", type=int, default=300)
    options = parser.parse_args()
    asyncio.run(main(options.calls_per_month, options.months, options.agents))
