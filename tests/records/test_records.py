"""The records store against a real PostgreSQL: migrations, the outbox facts, queue_log read
from a file with a checkpoint, reports, the story of a call; faults: replays, restarts, the
database away."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Awaitable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import asyncpg
import openpyxl
import pytest
from redis.asyncio import Redis

from agi.records import CallRecord, CallRecords, fact_fields
from ami_bridge.roster import Agent, Roster
from ami_bridge.seating import DeskOf
from harness.postgres_server import PostgresServer
from harness.redis_server import RedisServer
from hotline.app import SCHEMAS, migrate_records
from hotline.records.facts import read_fact
from hotline.records.ingest import QueueLogReader
from hotline.records.partitions import partitions, prune
from hotline.records.recorder import OutboxRecorder
from hotline.records.report import (
    COUNTS,
    Period,
    against_all,
    build_report,
    decide_fcr,
    fetch_counts,
    figures,
    figures_by_level,
    policy_args,
    raw_sql,
)
from hotline.records.service import roll_up
from hotline.records.store import RecordStore
from hotline.records.why import find_call, story_json
from hotline.sms.postcall import PostCallSms
from hotline_core.db import SchemaError, check_schema, current_version, expected_version, records_pool
from hotline_core.keys import RedisKeys
from hotline_core.metrics import Metrics
from hotline_core.policy import DEFAULT_POLICY_FILE, Policy
from hotline_core.redispipe import RedisPipe
from hotline_core.settings import load_settings

T0 = 1796000000  # 2026-11-30 (UTC), an ordinary Monday
DESKS = {"agent1": "vip_desk", "agent2": "highend_desk", "agent3": "newsub_desk", "agent4": "general"}


def identity(tier: str, level: str, chain: list[str], number: str) -> dict[str, Any]:
    return {"number": number, "tier": tier, "label": {"highend": "中高端", "rural": "农村"}.get(tier, "普通"),
            "brand": "easyown", "level": level, "queue_priority": 60, "skill_chain": chain, "matched": [tier],
            "degraded": False, "access_rule": "access_rules[1]", "closed_desks": [], "rows": {tier: {"name": "王"}}}


def entry(uid: str, ident: dict[str, Any]) -> dict[str, str]:
    record = CallRecord(uid, uid, "PJSIP/c", ident, T0 + 1.0, "ivr", lookup_ms=0.4)
    return fact_fields("entry", uid, record.to_hash())


QUEUE_LOG = "\n".join([
    f"{T0}|NONE|NONE|NONE|QUEUESTART|",
    # 1: high-value, answered by its desk after 3 s, talked 40 s
    f"{T0 + 2}|{T0}.1|hotline-highend_easyown|NONE|ENTERQUEUE||8613800000001|1",
    f"{T0 + 5}|{T0}.1|hotline-highend_easyown|agent2|CONNECT|3|{T0}.9|2",
    f"{T0 + 45}|{T0}.1|hotline-highend_easyown|agent2|COMPLETECALLER|3|40|1",
    # 2: high-value, overflowed to the general group after 25 s (over the 20 s threshold)
    f"{T0 + 2}|{T0}.2|hotline-highend_easyown|NONE|ENTERQUEUE||8613800000002|2",
    f"{T0 + 27}|{T0}.2|hotline-highend_easyown|agent4|CONNECT|25|{T0}.8|1",
    f"{T0 + 87}|{T0}.2|hotline-highend_easyown|agent4|COMPLETEAGENT|25|60|2",
    # 3: ordinary, abandoned after 2 s (a short abandon)
    f"{T0 + 3}|{T0}.3|hotline-ordinary_easyown|NONE|ENTERQUEUE||8613800000003|1",
    f"{T0 + 5}|{T0}.3|hotline-ordinary_easyown|NONE|ABANDON|1|1|2",
    # 4: ordinary, released after the maximum wait
    f"{T0 + 3}|{T0}.4|hotline-ordinary_easyown|NONE|ENTERQUEUE||8613800000004|2",
    f"{T0 + 303}|{T0}.4|hotline-ordinary_easyown|NONE|EXITWITHTIMEOUT|1|2|300",
    "",
])


@pytest.fixture
def store(records_db: tuple[str, asyncpg.Pool[Any]]) -> RecordStore:
    return RecordStore(records_db[1])


async def desks() -> DeskOf:
    return DESKS.get


def reader(store: RecordStore, path: Path) -> QueueLogReader:
    return QueueLogReader(store, path, "ast1", desks, poll_s=0.01, clock=lambda: datetime.fromtimestamp(T0, UTC))


async def read_all(r: QueueLogReader) -> int:
    total = 0
    while (read := await r.step()) > 0:
        total += read
    return total


async def count(pool: asyncpg.Pool[Any], sql: str, *args: Any) -> Any:
    return await pool.fetchval(sql, *args)


def facts() -> list[dict[str, str]]:
    return [
        entry(f"{T0}.1", identity("highend", "highend_easyown", ["highend_desk", "general"], "8613800000001")),
        entry(f"{T0}.2", identity("highend", "highend_easyown", ["highend_desk", "general"], "8613800000002")),
        entry(f"{T0}.3", identity("normal", "ordinary_easyown", ["general"], "8613800000003")),
        entry(f"{T0}.4", identity("normal", "ordinary_easyown", ["general"], "8613800000004")),
        entry(f"{T0}.5", identity("rural", "ordinary_easyown", ["general"], "8613800000005")),
        fact_fields("ivr", f"{T0}.5", {"ivr_outcome": "hangup", "ivr_path": "hotline:screen>hotline:bye",
                                       "service": "", "flow_version": "v1", "digits": "1"}),
        fact_fields("ivr", f"{T0}.1", {"ivr_outcome": "transfer", "ivr_path": "hotline:screen>hotline:agent",
                                       "service": "general", "flow_version": "v1", "digits": "0"}),
        fact_fields("sms", f"{T0}.5", {"job": "1-1", "sms_status": "delivered", "at": str(T0 + 60)}),
        fact_fields("sms", f"{T0}.5", {"job": "1-1", "sms_status": "sent", "at": str(T0 + 50)}),  # late, older
    ]


async def test_migrate_is_idempotent_and_the_schema_is_checked(records_db: tuple[str, asyncpg.Pool[Any]],
                                                               postgres_server: PostgresServer) -> None:
    _, pool = records_db
    async with pool.acquire() as conn:
        assert await migrate_records(conn, date(2026, 11, 30)) == []  # the fixture migrated already
        assert await check_schema(conn, SCHEMAS) == expected_version(SCHEMAS)
        await conn.execute("INSERT INTO schema_version (version, name) VALUES (999, 'from the future')")
        with pytest.raises(SchemaError, match="newer than this hotline knows"):
            await check_schema(conn, SCHEMAS)
    empty = postgres_server.create_database("t_empty_schema")
    conn = await asyncpg.connect(empty)
    try:
        assert await current_version(conn) == 0
        with pytest.raises(SchemaError, match="run `hotline db migrate`"):
            await check_schema(conn, SCHEMAS)
    finally:
        await conn.close()


async def test_the_report_counts_every_call_once_whatever_is_replayed(store: RecordStore, tmp_path: Path,
                                                                     records_db: tuple[str, asyncpg.Pool[Any]],
                                                                     policy: Policy) -> None:
    _, pool = records_db
    path = tmp_path / "queue_log"
    path.write_text(QUEUE_LOG)
    parsed = [read_fact(f) for f in facts()]
    await store.write_facts(parsed)
    assert await read_all(reader(store, path)) == 11  # QUEUESTART and the calls' ten lines
    await store.write_facts(parsed)  # the outbox delivered everything again
    await pool.execute("DELETE FROM ingest_checkpoints")  # and the file is read again from its start
    assert await read_all(reader(store, path)) == 11
    assert await count(pool, "SELECT count(*) FROM queue_log") == 11
    assert await count(pool, "SELECT count(*) FROM calls") == 5
    period = Period.days(date(2026, 11, 30), date(2026, 11, 30), policy)
    async with pool.acquire() as conn:
        by_tier = {r["tier"]: r for r in build_report(await fetch_counts(conn, policy, period, ("tier",)), ("tier",),
                                                        policy)}
        by_level = {r["level"]: r for r in build_report(await fetch_counts(conn, policy, period, ("level",)),
                                                          ("level",), policy)}
    assert set(by_tier) == {"highend", "newsub", "campus", "rural", "normal"}
    high = by_tier["highend"]
    assert (high["offered"], high["answered"], high["answer_rate"]) == (2, 2, 1.0)
    assert high["service_level"] == 0.5  # 3 s within 20 s; 25 s not
    assert (high["asa_s"], high["aht_s"], high["overflow_share"]) == (14.0, 50.0, 0.5)
    normal = by_tier["normal"]
    assert (normal["offered"], normal["answered"], normal["abandoned"], normal["released"]) == (2, 0, 1, 1)
    assert normal["short_abandoned"] == 1
    assert normal["service_level"] == 0.0
    assert normal["service_level_excl_short"] == 0.0  # 0 of the 1 offered call left
    rural = by_tier["rural"]
    assert (rural["offered"], rural["ivr_only"], rural["sms_delivered"]) == (0, 1, 1)  # the late "sent" lost
    assert by_tier["newsub"]["offered"] == 0
    assert by_tier["newsub"]["answer_rate"] is None
    assert by_level["ordinary_easyown"]["below_target"] is True
    assert by_level["highend_easyown"]["below_target"] is False
    assert by_level["gotone_vip"]["offered"] == 0  # every level appears


async def test_the_reader_resumes_from_its_checkpoint_and_waits_for_whole_lines(
        store: RecordStore, tmp_path: Path, records_db: tuple[str, asyncpg.Pool[Any]]) -> None:
    _, pool = records_db
    path = tmp_path / "queue_log"
    lines = QUEUE_LOG.splitlines(keepends=True)
    half = "".join(lines[:5])
    path.write_text(half + lines[5][:12])  # Asterisk is in the middle of writing a line
    assert await read_all(reader(store, path)) == 5
    with path.open("a") as handle:
        handle.write(lines[5][12:] + "".join(lines[6:]))
    assert await read_all(reader(store, path)) == 6  # a new reader: the checkpoint says where
    assert await count(pool, "SELECT count(*) FROM queue_log") == 11
    assert await count(pool, "SELECT queue_outcome FROM calls WHERE call_id = $1", f"{T0}.2") == "answered"


async def test_a_rotated_or_truncated_file_is_read_from_its_start_and_bad_lines_are_skipped(
        store: RecordStore, tmp_path: Path, records_db: tuple[str, asyncpg.Pool[Any]]) -> None:
    _, pool = records_db
    path = tmp_path / "queue_log"
    path.write_text(QUEUE_LOG)
    await read_all(reader(store, path))
    path.rename(tmp_path / "queue_log.1")
    path.write_text(f"not|a line\n{T0 + 400}|{T0}.6|hotline-ordinary_easyown|NONE|ENTERQUEUE||861|1\n")
    assert await read_all(reader(store, path)) == 1
    assert await count(pool, "SELECT bad_lines FROM ingest_checkpoints") == 1
    path.write_text(f"{T0 + 500}|{T0}.7|hotline-ordinary_easyown|NONE|ENTERQUEUE||862|1\n")  # same inode, shorter
    assert await read_all(reader(store, path)) == 1
    assert await count(pool, "SELECT count(*) FROM calls WHERE visits > 0") == 6


async def test_outbox_facts_wait_in_redis_while_the_database_is_away(
        redis: Redis, pipe: RedisPipe, postgres_server: PostgresServer,
        records_db: tuple[str, asyncpg.Pool[Any]]) -> None:
    _, pool = records_db
    records = CallRecords(pipe, "rec", 600)
    recorder = OutboxRecorder(redis, "rec", RecordStore(pool), clock=lambda: datetime.fromtimestamp(T0, UTC))
    await recorder.ensure_group()
    await records.write(CallRecord(f"{T0}.1", f"{T0}.1", "PJSIP/c",
                                   identity("highend", "highend_easyown", ["highend_desk"], "8613800000001"),
                                   T0 + 1.0, "ivr"))
    await records.annotate(f"{T0}.1", {"ivr_outcome": "transfer", "ivr_path": "a>b", "service": "billing",
                                       "flow_version": "v1", "digits": "1,2"})
    postgres_server.stop()
    try:
        with pytest.raises((OSError, asyncpg.PostgresError, asyncpg.InterfaceError)):
            await recorder.step()
        assert await redis.xlen(RedisKeys("rec").records_outbox) == 2  # nothing lost
    finally:
        postgres_server.start()
    await pool.expire_connections()
    assert await recorder.step() == 2
    assert await redis.xlen(RedisKeys("rec").records_outbox) == 0
    row = await pool.fetchrow("SELECT tier, service, digits, number FROM calls")
    assert dict(row) == {"tier": "highend", "service": "billing", "digits": "1,2", "number": "8613800000001"}


async def test_why_tells_the_story_of_the_last_call_of_a_number(store: RecordStore, tmp_path: Path, policy: Policy,
                                                                records_db: tuple[str, asyncpg.Pool[Any]]) -> None:
    _, pool = records_db
    path = tmp_path / "queue_log"
    path.write_text(QUEUE_LOG)
    await store.write_facts([read_fact(f) for f in facts()])
    await read_all(reader(store, path))
    async with pool.acquire() as conn:
        call = await find_call(conn, "8613800000002", "8613800000002")
    assert call is not None
    story = story_json(call, policy.zone)
    assert {k: story[k] for k in ("linkedid", "number", "tier", "level", "queue", "outcome", "agent", "wait_s",
                                  "talk_s", "desk")} == {
        "linkedid": f"{T0}.2", "number": "8613800000002", "tier": "highend", "level": "highend_easyown",
        "queue": "hotline-highend_easyown", "outcome": "answered", "agent": "agent4", "wait_s": 25, "talk_s": 60,
        "desk": "general"}
    assert story["rows"] == {"highend": {"name": "王"}}
    assert len(story["queue_log"]) == 3
    assert story["started_at"] == "2026-11-30T08:53:20+08:00"  # the operator's time zone
    json.dumps(story)  # serialisable as printed by --json


async def test_old_months_are_pruned_by_retention(records_db: tuple[str, asyncpg.Pool[Any]]) -> None:
    _, pool = records_db
    async with pool.acquire() as conn:
        await migrate_records(conn, date(2025, 1, 15))  # partitions around January 2025 too
        before = {m for _, m in await partitions(conn)}
        assert date(2025, 1, 1) in before
        dropped = await prune(conn, date(2026, 11, 30), keep_months=13)
        after = {m for _, m in await partitions(conn)}
    assert all(name.endswith(("y2024m12", "y2025m01", "y2025m02", "y2025m03")) for name in dropped)
    assert min(after) >= date(2025, 11, 1)




async def test_the_hourly_rollup_follows_late_writes_and_policy_changes(store: RecordStore, tmp_path: Path,
                                                                       records_db: tuple[str, asyncpg.Pool[Any]],
                                                                       policy: Policy) -> None:
    _, pool = records_db
    path = tmp_path / "queue_log"
    path.write_text(QUEUE_LOG)
    await store.write_facts([read_fact(f) for f in facts()])
    await read_all(reader(store, path))
    period = Period.days(date(2026, 11, 30), date(2026, 11, 30), policy)

    async def tier_row(tier: str, with_policy: Policy, by: tuple[str, ...] = ("tier",)) -> dict[str, Any]:
        async with pool.acquire() as conn:
            rows = build_report(await fetch_counts(conn, with_policy, period, by), by, with_policy)
        return next(r for r in rows if r["tier"] == tier and (r["offered"] or by == ("tier",)))

    def upkeep(with_policy: Policy) -> Awaitable[int | None]:
        return roll_up(pool, with_policy, lambda: datetime(2026, 11, 30, 12, tzinfo=UTC), keep_months=13)

    assert (await tier_row("highend", policy))["service_level"] == 0.5
    # Reports only read: the hours not rolled up yet were read from the calls, and are still marked.
    assert await count(pool, "SELECT count(*) FROM dirty_hours") > 0
    assert await count(pool, "SELECT count(*) FROM call_hours") == 0
    marked = await count(pool, "SELECT count(DISTINCT hour) FROM dirty_hours")
    assert await upkeep(policy) == marked
    assert await count(pool, "SELECT count(*) FROM dirty_hours") == 0  # the upkeep brought the rollup up to date
    assert await count(pool, "SELECT count(*) FROM call_hours") > 0
    assert (await tier_row("highend", policy))["service_level"] == 0.5  # the same figure, now from the rollup
    # A new call in an hour the rollup already holds.
    with path.open("a") as handle:
        handle.write(f"{T0 + 9}|{T0}.9|hotline-highend_easyown|NONE|ENTERQUEUE||8613800000009|1\n"
                     f"{T0 + 10}|{T0}.9|hotline-highend_easyown|agent2|CONNECT|1|x|1\n")
    await store.write_facts([read_fact(entry(f"{T0}.9", identity("highend", "highend_easyown",
                                                                   ["highend_desk", "general"], "8613800000009")))])
    await read_all(reader(store, path))
    late = await tier_row("highend", policy)  # the marked hour from the calls, before any upkeep
    assert (late["offered"], late["answered"], late["service_level"]) == (3, 3, round(2 / 3, 4))
    assert await upkeep(policy) == 1
    rolled = await tier_row("highend", policy)
    # The upkeep also gave the new call its first-contact verdict (its window is long past).
    assert rolled["fcr_decided"] == late["fcr_decided"] + 1
    assert {k: v for k, v in rolled.items() if not k.startswith("fcr")} == \
        {k: v for k, v in late.items() if not k.startswith("fcr")}
    # The operators give high-value callers 30 s: the rows built with 20 s are stale, read from the
    # calls until the upkeep rebuilds them.
    levels = tuple(lv.model_copy(update={"service_level_seconds": 30}) if lv.name == "highend_easyown" else lv
                   for lv in policy.levels)
    relaxed = policy.model_copy(update={"levels": levels})
    assert (await tier_row("highend", relaxed))["service_level"] == 1.0
    assert await upkeep(relaxed) >= 1
    assert (await tier_row("highend", relaxed))["service_level"] == 1.0
    assert await upkeep(relaxed) == 0
    by_agent = await tier_row("highend", relaxed, ("tier", "agent"))  # agents: from the calls themselves
    assert by_agent["agent"] in ("agent2", "agent4")


async def test_a_call_that_ended_while_no_bridge_listened_still_gets_its_post_call_sms(
        store: RecordStore, tmp_path: Path, records_db: tuple[str, asyncpg.Pool[Any]], redis: Redis,
        pipe: RedisPipe, policy: Policy) -> None:
    """`hotline serve` was down when the agent hung up: AMI's AgentComplete was never heard. The
    queue_log reader sees the completion and the SMS goes out, once however often it is read."""
    _, pool = records_db
    now = int(time.time())
    uid = f"{now - 60}.1"
    records = CallRecords(pipe, "rec", 600)
    rural = {"number": "8613800000004", "tier": "rural", "name": "王", "label": "农村", "blacklist": False}
    await records.write(CallRecord(uid, uid, "PJSIP/c", rural, now - 60.0, "ivr"))
    post_call = PostCallSms(redis, "rec", policy, records)
    old = f"{now - 90_000}.7"  # a day ago: too late to text anyone now
    ended = post_call.calls_ended  # as the records feature is wired to the SMS feature

    path = tmp_path / "queue_log"
    path.write_text(f"{now - 50}|{uid}|hotline-ordinary_easyown|NONE|ENTERQUEUE||8613800000004|1\n"
                    f"{now - 48}|{uid}|hotline-ordinary_easyown|agent1|CONNECT|2|x|1\n"
                    f"{now - 10}|{uid}|hotline-ordinary_easyown|agent1|COMPLETEAGENT|2|38|1\n"
                    f"{now - 90_000}|{old}|hotline-ordinary_easyown|agent1|COMPLETEAGENT|2|38|1\n")
    reader = QueueLogReader(store, path, "ast1", desks, completed=ended)
    await read_all(reader)
    await pool.execute("DELETE FROM ingest_checkpoints")
    await read_all(QueueLogReader(store, path, "ast1", desks, completed=ended))  # read again: no second SMS
    jobs = await redis.xrange(RedisKeys("rec").sms_jobs)
    assert [(f["kind"], f["uniqueid"], f["number"]) for _, f in jobs] == [("post_call", uid, "8613800000004")]


async def test_reports_and_board_refreshes_at_once_while_calls_are_recorded_never_write_nor_double_count(
        store: RecordStore, records_db: tuple[str, asyncpg.Pool[Any]], policy: Policy) -> None:
    """Many readers (reports, the board's figures of the day) and the rollup's upkeep from several
    connections, while calls keep being written into hours the rollup holds and hours it does not."""
    _, pool = records_db
    period = Period.days(date(2026, 11, 30), date(2026, 11, 30), policy)
    written = 0
    writing = True
    totals: list[tuple[int, int, int]] = []  # (written before, report total, written after)

    async def write_calls() -> None:
        nonlocal written, writing
        for batch in range(30):
            ids = [f"{T0 + (batch % 6) * 3600 + n}.{batch}" for n in range(5)]
            await store.write_facts([read_fact(entry(uid, identity("highend", "highend_easyown",
                                                                   ["highend_desk", "general"], "8613800000001")))
                                     for uid in ids])
            written += len(ids)
            await asyncio.sleep(0.01)
        writing = False

    async def report(by: tuple[str, ...]) -> None:
        while writing:
            before = written
            async with pool.acquire() as conn:
                rows = await fetch_counts(conn, policy, period, by)
            totals.append((before, sum(int(r["calls"]) for r in rows), written))

    async def upkeep() -> None:
        while writing:
            await roll_up(pool, policy, lambda: datetime(2026, 11, 30, 12, tzinfo=UTC), keep_months=13)
            await asyncio.sleep(0.005)

    await asyncio.gather(write_calls(), *(report(by) for by in (("tier",), ("level",), ("hour",), ("tier", "day"))),
                         upkeep(), upkeep())
    assert len(totals) > 20
    # Each report saw every call committed before it began, and none twice (at most what was written by its end).
    assert all(before <= total <= after for before, total, after in totals), totals
    async with pool.acquire() as conn:
        final = await fetch_counts(conn, policy, period, ("tier",))
        truth = await conn.fetch(raw_sql(("tier",)), *policy_args(policy), period.start, period.end)
    assert sum(int(r["calls"]) for r in final) == written == sum(int(r["calls"]) for r in truth)


async def test_what_cannot_be_stored_is_quarantined_with_its_reason_and_the_rest_flows_on(
        redis: Redis, records_db: tuple[str, asyncpg.Pool[Any]]) -> None:
    """Anyone who reaches the FastAGI port can make the call path write such facts; each once
    stopped every record behind it."""
    _, pool = records_db
    metrics = Metrics()
    recorder = OutboxRecorder(redis, "rec", RecordStore(pool), clock=lambda: datetime.fromtimestamp(T0, UTC),
                              metrics=metrics)
    await recorder.ensure_group()
    good = entry(f"{T0}.1", identity("highend", "highend_easyown", ["highend_desk"], "8613800000001"))
    refused_by_db = entry(f"{T0}.2", identity("rural", "ordinary_easyown", ["general"], "86138\x0000002"))
    far_future = entry("99999999999999.1", identity("normal", "ordinary_easyown", ["general"], "8613800000003"))
    nul_linkedid = {**entry(f"{T0}.4", identity("normal", "ordinary_easyown", ["general"], "8613800000004")),
                    "linkedid": "17960\x00.4"}
    outbox = RedisKeys("rec").records_outbox
    for fields in (good, refused_by_db, far_future, nul_linkedid):
        await redis.xadd(outbox, fields)  # type: ignore[arg-type]
    assert await recorder.step() == 1
    assert await redis.xlen(outbox) == 0  # nothing left to block the facts behind
    assert [r["call_id"] for r in await pool.fetch("SELECT call_id FROM calls")] == [f"{T0}.1"]
    rows = await pool.fetch("SELECT source, raw, reason FROM records_quarantine ORDER BY id")
    reasons = {json.loads(r["raw"])["uniqueid"]: r["reason"] for r in rows}
    assert {r["source"] for r in rows} == {"outbox"}
    assert reasons["99999999999999.1"] == "uniqueid '99999999999999.1' names no possible time"
    assert reasons[f"{T0}.4"] == "a NUL character in linkedid"
    assert reasons[f"{T0}.2"].startswith("the database refused it: CharacterNotInRepertoireError")
    assert metrics.registry.get_sample_value("hotline_quarantined_total", {"component": "records outbox"}) == 3
    # The next good fact is stored as ever.
    await redis.xadd(outbox, entry(f"{T0}.5", identity("normal", "ordinary_easyown", ["general"], "8613800000005")))  # type: ignore[arg-type]
    assert await recorder.step() == 1


async def test_queue_log_lines_no_row_can_hold_are_quarantined_and_the_lines_behind_them_are_read(
        store: RecordStore, tmp_path: Path, records_db: tuple[str, asyncpg.Pool[Any]]) -> None:
    _, pool = records_db
    path = tmp_path / "queue_log"
    call = f"{T0}.21"
    path.write_bytes(
        f"{T0 + 1}|{call}|hotline-ordinary_easyown|NONE|ENTERQUEUE||8613800000021|1\n".encode()
        + f"{T0 + 1}|{call}|hotline-ordinary_easyown|NONE|ENTERQUEUE||8613800000021|1\n".encode()  # a duplicate
        + f"{T0 + 2}|{T0}.22|hotline-ordinary_easyown|NONE|ENTERQUEUE||86\x00138|1\n".encode()
        + f"99999999999999|{T0}.23|hotline-ordinary_easyown|NONE|ENTERQUEUE||861|1\n".encode()
        + f"{T0 + 3}|99999999999999.1|hotline-ordinary_easyown|NONE|ENTERQUEUE||861|1\n".encode()
        + f"{T0 + 4}|4_000_000_000.1|hotline-ordinary_easyown|NONE|ENTERQUEUE||861|1\n".replace("_", "").encode()
        + f"{978_307_200}|978307200.5|hotline-ordinary_easyown|NONE|ENTERQUEUE||861|1\n".encode()
        + f"{T0 + 6}|{call}|hotline-ordinary_easyown|agent1|CONNECT|99999999999999999999|x|1\n".encode()
        + f"{T0 + 40}|{call}|hotline-ordinary_easyown|agent1|COMPLETECALLER|5|34|1\n".encode())
    await read_all(reader(store, path))
    quarantined = await pool.fetch("SELECT source, raw, reason FROM records_quarantine ORDER BY id")
    assert [(r["source"], r["reason"]) for r in quarantined] == [
        ("ast1", "a NUL character in field 7"),
        ("ast1", "time '99999999999999' is not between 2025-10-26 and 2026-12-01"),
        ("ast1", "callid '99999999999999.1' names a time not between 2025-10-26 and 2026-12-01"),
        # Years Asterisk could write, but no call of these records' (a broken clock, a forged
        # id): no partition of 2096 or 2001 is made for them.
        ("ast1", "callid '4000000000.1' names a time not between 2025-10-26 and 2026-12-01"),
        ("ast1", "time '978307200' is not between 2025-10-26 and 2026-12-01")]
    assert "\\u0000" in quarantined[0]["raw"]  # the raw line kept, NUL and all
    visits = await pool.fetch("SELECT outcome, wait_s, talk_s FROM queue_visits WHERE call_id = $1", call)
    assert [tuple(v) for v in visits] == [("answered", None, 34)]  # one visit, not a phantom waiting one
    assert await count(pool, "SELECT bad_lines FROM ingest_checkpoints WHERE source = 'ast1'") == 5
    months = {r["m"] for r in await pool.fetch("SELECT DISTINCT date_trunc('month', started_at) AS m FROM queue_visits")}
    assert {m.year for m in months} == {2026}
    assert not [r for r in await pool.fetch("SELECT relname FROM pg_class WHERE relname ~ '_y(2096|2001)m'")]
    listed = await asyncio.to_thread(
        subprocess.run, [str(Path(sys.executable).parent / "hotline"), "db", "quarantine", "--limit", "2"],
        env={**os.environ, "HOTLINE_DATABASE_URL": records_db[0]}, capture_output=True, text=True, timeout=60,
        check=False)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0] == "5 item(s) in the quarantine, the newest 2:"
    assert lines[1].endswith("ast1: time '978307200' is not between 2025-10-26 and 2026-12-01")


async def test_concurrent_reports_after_a_policy_change_neither_collide_nor_write(
        store: RecordStore, tmp_path: Path, records_db: tuple[str, asyncpg.Pool[Any]], policy: Policy) -> None:
    """What failed 16 of 60 times: reports that each rebuilt the stale hours collided on
    call_hours' key. Reports only read now; the one writer is the upkeep."""
    _, pool = records_db
    path = tmp_path / "queue_log"
    path.write_text(QUEUE_LOG)
    await store.write_facts([read_fact(f) for f in facts()])
    await read_all(reader(store, path))
    await roll_up(pool, policy, lambda: datetime(2026, 11, 30, 12, tzinfo=UTC), keep_months=13)
    rolled = [tuple(r) for r in await pool.fetch("SELECT * FROM call_hours ORDER BY 1, 2, 3, 4, 5")]
    levels = tuple(lv.model_copy(update={"service_level_seconds": 30}) for lv in policy.levels)
    relaxed = policy.model_copy(update={"levels": levels})  # every hour's rows are stale for it
    period = Period.days(date(2026, 11, 30), date(2026, 11, 30), relaxed)

    async def report() -> list[dict[str, Any]]:
        async with pool.acquire() as conn:
            return build_report(await fetch_counts(conn, relaxed, period, ("tier",)), ("tier",), relaxed)

    reports = await asyncio.gather(*(report() for _ in range(60)))
    assert all(r == reports[0] for r in reports)
    assert [tuple(r) for r in await pool.fetch("SELECT * FROM call_hours ORDER BY 1, 2, 3, 4, 5")] == rolled
    assert await roll_up(pool, relaxed, lambda: datetime(2026, 11, 30, 12, tzinfo=UTC), keep_months=13)
    async with pool.acquire() as conn:  # once the upkeep rebuilt them, the rollup gives the same report
        assert build_report(await fetch_counts(conn, relaxed, period, ("tier",)), ("tier",), relaxed) == reports[0]


async def test_the_database_password_kept_in_a_file_of_its_own_opens_the_database(
        records_db: tuple[str, asyncpg.Pool[Any]], postgres_server: PostgresServer, tmp_path: Path) -> None:
    url, _ = records_db
    bare = url.replace(f":{postgres_server.password}@", "@")
    assert bare != url
    secret = tmp_path / "postgres_password"
    secret.write_text(postgres_server.password + "\n")
    env = {"HOTLINE_DATABASE_URL": bare, "HOTLINE_DATABASE_PASSWORD_FILE": str(secret)}
    async with records_pool(load_settings(env).database_url, 1, eager=True) as pool:
        assert await pool.fetchval("SELECT current_user") == "hotline"
    secret.write_text("not-the-password")
    with pytest.raises(asyncpg.InvalidPasswordError):
        async with records_pool(load_settings(env).database_url, 1, eager=True):
            pass


def answered(uid: str, at: int, agent: str, number: str) -> str:
    """queue_log lines of a call answered by `agent` (talked 30 s)."""
    return (f"{at}|{uid}|hotline-ordinary_easyown|NONE|ENTERQUEUE||{number}|1\n"
            f"{at + 2}|{uid}|hotline-ordinary_easyown|{agent}|CONNECT|2|x|1\n"
            f"{at + 32}|{uid}|hotline-ordinary_easyown|{agent}|COMPLETEAGENT|2|30|1\n")


def survey_fact(uid: str, key: str, agent: str) -> dict[str, str]:
    labels = {"1": ("满意", "1"), "2": ("一般", "0"), "3": ("不满意", "0")}
    if key in labels:
        label, satisfied = labels[key]
        fields = {"survey_result": "answered", "survey": key, "survey_label": label, "survey_satisfied": satisfied}
    else:
        fields = {"survey_result": key, "survey": "", "survey_label": "", "survey_satisfied": ""}
    return fact_fields("survey", uid, {**fields, "agent": agent, "at": str(T0 + 3600)})


async def seed_measured(store: RecordStore, pool: asyncpg.Pool[Any], tmp_path: Path) -> None:
    """Agent a answers three calls: one satisfied, one not, one hung up at the survey; the
    first caller comes back within the window (not resolved). Agent b answers one call about
    which a work order is filed (not resolved) and one resolved; its survey comes from a key
    off the scale. Beside them, the usual mix of tiers (QUEUE_LOG)."""
    n1, n2, n3, n4, n5 = (f"86139000000{i:02d}" for i in range(1, 6))
    calls = [(f"{T0}.51", T0, "a", n1), (f"{T0 + 600}.52", T0 + 600, "a", n2), (f"{T0 + 900}.53", T0 + 900, "a", n3),
             (f"{T0 + 1800}.54", T0 + 1800, "a", n1),  # n1 again within 72 h
             (f"{T0 + 60}.55", T0 + 60, "b", n4), (f"{T0 + 120}.56", T0 + 120, "b", n5)]
    await store.write_facts([read_fact(f) for f in facts()])
    await store.write_facts([read_fact(entry(uid, identity("normal", "ordinary_easyown", ["general"], number)))
                             for uid, _, _, number in calls])
    path = tmp_path / "queue_log"
    path.write_text(QUEUE_LOG + "".join(answered(uid, at, agent, number) for uid, at, agent, number in calls))
    await read_all(reader(store, path))
    await store.write_facts([read_fact(survey_fact(uid, key, agent)) for uid, key, agent in [
        (f"{T0}.51", "1", "a"), (f"{T0 + 600}.52", "3", "a"), (f"{T0 + 900}.53", "hung up", "a"),
        (f"{T0 + 60}.55", "invalid", "b"), (f"{T0 + 120}.56", "2", "b")]])
    await pool.execute("INSERT INTO work_orders (created_at, linkedid, number, contact, special_customer, "
                       "special_label, category, description, status, priority, reply_due, resolve_due, created_by, "
                       "updated_at) VALUES (to_timestamp($1), $2, $3, $3, 'normal', '普通', 'billing', 'x', 'new', 1, "
                       "now(), now(), 'b', now())", T0 + 3000, f"{T0 + 60}.55", n4)


async def test_surveys_and_first_contact_verdicts_are_counted_per_agent(
        store: RecordStore, tmp_path: Path, records_db: tuple[str, asyncpg.Pool[Any]], policy: Policy) -> None:
    """Figures from the rollup equal those from the calls, whatever the path (see seed_measured)."""
    _, pool = records_db
    await seed_measured(store, pool, tmp_path)
    # An hour after the calls their 72 h have not passed: pending, not counted.
    async with pool.acquire() as conn:
        await decide_fcr(conn, policy, datetime.fromtimestamp(T0 - 86400, UTC), datetime.fromtimestamp(T0 + 3600, UTC))
    assert await count(pool, "SELECT count(fcr) FROM calls WHERE agent IN ('a', 'b')") == 0
    # The writer's round (the wall clock is long past these calls' windows) decides them.
    await roll_up(pool, policy, lambda: datetime.fromtimestamp(T0, UTC), keep_months=13)
    verdicts = {r["call_id"]: r["fcr"]
                for r in await pool.fetch("SELECT call_id, fcr FROM calls WHERE agent IN ('a', 'b')")}
    assert verdicts == {f"{T0}.51": False, f"{T0 + 600}.52": True, f"{T0 + 900}.53": True, f"{T0 + 1800}.54": True,
                        f"{T0 + 60}.55": False, f"{T0 + 120}.56": True}
    period = Period.days(date(2026, 11, 30), date(2026, 11, 30), policy)
    async with pool.acquire() as conn:
        rows = {r["agent"]: r for r in build_report(await fetch_counts(conn, policy, period, ("agent",)), ("agent",),
                                                    policy)}
        raw = {r["agent"]: r for r in build_report(await fetch_counts(conn, policy, period, ("agent", "tier")),
                                                   ("agent", "tier"), policy) if r["offered"]}
        by_tier = await fetch_counts(conn, policy, period, ("tier",))
    assert await count(pool, "SELECT count(*) FROM agent_hours WHERE agent IN ('a', 'b')") > 0  # from the rollup
    assert (rows["a"]["surveyed"], rows["a"]["csat"], rows["b"]["surveyed"], rows["b"]["csat"]) == (2, 0.5, 1, 0.0)
    assert (rows["a"]["fcr_decided"], rows["a"]["fcr"], rows["b"]["fcr"]) == (4, 0.75, 0.5)
    assert rows["a"]["aht_s"] == 30.0
    for agent in ("a", "b"):  # the per-agent rollup and the calls themselves agree
        assert {k: rows[agent][k] for k in ("answered", "surveyed", "csat", "fcr", "aht_s")} == \
            {k: raw[agent][k] for k in ("answered", "surveyed", "csat", "fcr", "aht_s")}
    # The operators' benchmark: a tier against the whole hotline, in points and seconds.
    compared = {r["tier"]: r for r in against_all(build_report(by_tier, ("tier",), policy), by_tier, policy)}
    overall = figures({k: sum(int(r[k]) for r in by_tier) for k in COUNTS}, policy, None)
    highend = compared["highend"]
    assert highend["answer_rate_vs_all"] == round((highend["answer_rate"] - overall["answer_rate"]) * 100, 1)
    assert highend["aht_vs_all_s"] == round(highend["aht_s"] - overall["aht_s"], 1)


async def test_agents_kpis_and_measured_desks_from_the_command_line(
        store: RecordStore, tmp_path: Path, records_db: tuple[str, asyncpg.Pool[Any]], policy: Policy,
        redis: Redis, redis_server: RedisServer) -> None:
    url, pool = records_db
    await seed_measured(store, pool, tmp_path)
    await roll_up(pool, policy, lambda: datetime.fromtimestamp(T0, UTC), keep_months=13)
    roster = Roster(redis, "cli")
    typed = [Agent("a", "甲", "PJSIP/a", (), date(2022, 1, 1), 0.99, 0.95),
             Agent("b", "乙", "PJSIP/b", (), date(2022, 1, 1), 0.98, 0.94)]
    await roster.replace_all(typed)
    env = {**os.environ, "HOTLINE_DATABASE_URL": url, "HOTLINE_REDIS_URL": redis_server.url,
           "HOTLINE_REDIS_PREFIX": "cli", "HOTLINE_FROZEN_TIME": "2026-11-30T12:00:00+08:00"}
    strict = tmp_path / "policy.yaml"  # a figure counts from one survey or one decided call here
    strict.write_text(DEFAULT_POLICY_FILE.read_text(encoding="utf-8").replace("min_surveys: 30", "min_surveys: 1")
                      .replace("min_fcr_calls: 50", "min_fcr_calls: 1"), encoding="utf-8")
    env["HOTLINE_POLICY_FILE"] = str(strict)

    def hotline(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(Path(sys.executable).parent / "hotline"), *args], env=env, capture_output=True,
                              text=True, timeout=60, check=False)

    shown = await asyncio.to_thread(hotline, "agents", "kpis", "--format", "json")
    assert shown.returncode == 0, shown.stderr
    rows = {r["agent"]: r for r in json.loads(shown.stdout)}
    assert (rows["a"]["calls"], rows["a"]["csat"], rows["a"]["fcr"], rows["a"]["qualified"]) == (4, 0.5, 0.75, False)
    assert rows["a"]["reasons"] == ["satisfaction 50% < 95%", "first-contact resolution 75% < 85%"]
    assert {"agent2", "agent4"} <= set(rows)  # agents of the records not on this roster
    assert rows["agent2"]["reasons"] == ["not on the roster"]
    table = await asyncio.to_thread(hotline, "agents", "kpis")
    assert "satisfaction = satisfied / surveys answered" in table.stdout
    assert "50.0%" in table.stdout
    xlsx = await asyncio.to_thread(hotline, "agents", "kpis", "--format", "xlsx", "--output", str(tmp_path / "k.xlsx"))
    assert xlsx.returncode == 0, xlsx.stderr
    assert openpyxl.load_workbook(tmp_path / "k.xlsx").active["A2"].value == "a"
    bad = await asyncio.to_thread(hotline, "agents", "kpis", "--from", "2026-12-31", "--to", "2026-12-01")
    assert (bad.returncode, "--to 2026-12-01 is before --from 2026-12-31" in bad.stderr) == (2, True)

    looked = await asyncio.to_thread(hotline, "agents", "desks", "--measured")
    assert looked.returncode == 0, looked.stderr
    assert "nothing changed: --apply puts these figures into the roster" in looked.stdout
    assert await roster.all() == typed  # looking changes nothing
    assert (await asyncio.to_thread(hotline, "agents", "desks", "--apply")).returncode == 2
    applied = await asyncio.to_thread(hotline, "agents", "desks", "--measured", "--apply", "--as", "王主管")
    assert applied.returncode == 0, applied.stderr
    a, b = await roster.all()
    assert (a.satisfaction, a.first_contact_resolution, a.measured) == (0.5, 0.75,
                                                                         ("satisfaction", "first_contact_resolution"))
    assert (b.satisfaction, b.first_contact_resolution) == (0.0, 0.5)
    listed = (await asyncio.to_thread(hotline, "agents", "list")).stdout
    assert "sat  50%m  fcr  75%m" in listed  # m: measured, not typed in
    kept = await pool.fetchrow("SELECT applied_by, period, changes FROM desk_evaluations")
    assert (kept["applied_by"], kept["period"]) == ("王主管", None)
    assert json.loads(kept["changes"])["figures"]["a"]["satisfaction"] == 0.5


async def test_a_caller_still_waiting_within_the_threshold_is_not_yet_counted_today(
        store: RecordStore, tmp_path: Path, records_db: tuple[str, asyncpg.Pool[Any]], policy: Policy) -> None:
    """The board's rule: one caller waiting 10 s of a 20 s threshold does not lower the level's
    service level; once the wait passes the threshold it counts (as not answered in time)."""
    _, pool = records_db
    await store.write_facts([read_fact(f) for f in facts()])
    await store.write_facts([read_fact(entry(f"{T0 + 100}.7", identity("highend", "highend_easyown",
                                                                      ["highend_desk", "general"], "8613800000007")))])
    path = tmp_path / "queue_log"
    path.write_text(QUEUE_LOG + f"{T0 + 100}|{T0 + 100}.7|hotline-highend_easyown|NONE|ENTERQUEUE||8613800000007|1\n")
    await read_all(reader(store, path))
    threshold = policy.level("highend_easyown").service_level_seconds
    async with pool.acquire() as conn:
        soon = await figures_by_level(conn, policy, date(2026, 11, 30), datetime.fromtimestamp(T0 + 100 + 10, UTC))
        late = await figures_by_level(conn, policy, date(2026, 11, 30),
                                      datetime.fromtimestamp(T0 + 100 + threshold + 1, UTC))
    assert (soon["highend_easyown"]["offered"], soon["highend_easyown"]["service_level"]) == (2, 0.5)
    assert (late["highend_easyown"]["offered"], late["highend_easyown"]["service_level"]) == (3, round(1 / 3, 4))
