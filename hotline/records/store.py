"""All SQL that writes call records. Every write is idempotent: a row is named by where it came
from (the call's uniqueid; a queue_log line's source, file and offset), so a fact delivered
twice, a file read again, or several instances seeing the same call change nothing."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any

import asyncpg

from ami_bridge.seating import DeskOf
from hotline.records.facts import SMS_RANK, EntryRow, Fact, IvrRow, SmsRow, SurveyRow
from hotline.records.outcome import QueueOutcome, summarise
from hotline.records.partitions import ensure_partitions, month_start
from hotline.records.queue_log import BadLine, QueueLogRow, call_started
from hotline_core.db import Conn

_SMS_RANK_SQL = "CASE {col} " + " ".join(f"WHEN '{s}' THEN {r}" for s, r in SMS_RANK.items()) + " ELSE -1 END"

_ENTRY = """
INSERT INTO calls (started_at, call_id, linkedid, number, tier, tier_label, brand, level, queue_priority,
                   skill_chain, closed_desks, access_rule, matched, degraded, lookup_ms, entered_at, route)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
ON CONFLICT (started_at, call_id) DO UPDATE SET
    linkedid = EXCLUDED.linkedid, number = EXCLUDED.number, tier = EXCLUDED.tier,
    tier_label = EXCLUDED.tier_label, brand = EXCLUDED.brand, level = EXCLUDED.level,
    queue_priority = EXCLUDED.queue_priority, skill_chain = EXCLUDED.skill_chain,
    closed_desks = EXCLUDED.closed_desks, access_rule = EXCLUDED.access_rule, matched = EXCLUDED.matched,
    degraded = EXCLUDED.degraded, lookup_ms = EXCLUDED.lookup_ms, entered_at = EXCLUDED.entered_at,
    route = EXCLUDED.route, updated_at = now()
"""
_DETAILS = """
INSERT INTO call_details (started_at, call_id, identity) VALUES ($1, $2, $3::jsonb)
ON CONFLICT (started_at, call_id) DO UPDATE SET identity = EXCLUDED.identity
"""
_IVR = """
INSERT INTO calls (started_at, call_id, ivr_result, ivr_path, digits, service, flow_version)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (started_at, call_id) DO UPDATE SET
    ivr_result = EXCLUDED.ivr_result, ivr_path = EXCLUDED.ivr_path, digits = EXCLUDED.digits,
    service = EXCLUDED.service, flow_version = EXCLUDED.flow_version, updated_at = now()
"""
_SMS = f"""
INSERT INTO calls (started_at, call_id, sms_status, sms_at) VALUES ($1, $2, $3, $4)
ON CONFLICT (started_at, call_id) DO UPDATE SET sms_status = EXCLUDED.sms_status, sms_at = EXCLUDED.sms_at,
    updated_at = now()
WHERE {_SMS_RANK_SQL.format(col="calls.sms_status")} <= {_SMS_RANK_SQL.format(col="EXCLUDED.sms_status")}
"""
# The survey rates the agent who answered: `survey_agent`, as the survey heard it from app_queue.
_SURVEY = """
INSERT INTO calls (started_at, call_id, survey_result, survey, survey_label, survey_satisfied, survey_agent, survey_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (started_at, call_id) DO UPDATE SET
    survey_result = EXCLUDED.survey_result, survey = EXCLUDED.survey, survey_label = EXCLUDED.survey_label,
    survey_satisfied = EXCLUDED.survey_satisfied, survey_agent = EXCLUDED.survey_agent,
    survey_at = EXCLUDED.survey_at, updated_at = now()
"""
_DIRTY = """
INSERT INTO dirty_hours SELECT DISTINCT date_trunc('hour', at) FROM unnest($1::timestamptz[]) AS at
ON CONFLICT DO NOTHING
"""
_QUEUE_LOG = """
INSERT INTO queue_log (at, source, file_key, line_offset, callid, queue, agent, event, data)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
ON CONFLICT DO NOTHING
"""
_CHECKPOINT = """
INSERT INTO ingest_checkpoints (source, file_key, line_offset, bad_lines) VALUES ($1, $2, $3, $4)
ON CONFLICT (source) DO UPDATE SET file_key = EXCLUDED.file_key, line_offset = EXCLUDED.line_offset,
    bad_lines = ingest_checkpoints.bad_lines + EXCLUDED.bad_lines, updated_at = now()
"""
_CALL_ROWS = """
SELECT callid, extract(epoch FROM at)::bigint AS at, line_offset, queue, agent, event, data
FROM queue_log WHERE callid = ANY($1::text[]) ORDER BY callid, at, source, file_key, line_offset
"""
_QUEUE_SIDE = """
INSERT INTO calls (started_at, call_id, queue, queue_entered_at, visits, queue_outcome, agent, desk, wait_s,
                   talk_s, abandon_position, end_reason)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
ON CONFLICT (started_at, call_id) DO UPDATE SET
    queue = EXCLUDED.queue, queue_entered_at = EXCLUDED.queue_entered_at, visits = EXCLUDED.visits,
    queue_outcome = EXCLUDED.queue_outcome, agent = EXCLUDED.agent,
    desk = coalesce(calls.desk, EXCLUDED.desk), wait_s = EXCLUDED.wait_s, talk_s = EXCLUDED.talk_s,
    abandon_position = EXCLUDED.abandon_position, end_reason = EXCLUDED.end_reason, updated_at = now()
"""
_VISIT = """
INSERT INTO queue_visits (started_at, call_id, visit, queue, entered_at, position, outcome, wait_s, talk_s,
                          agent, desk, reason)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
ON CONFLICT (started_at, call_id, visit) DO UPDATE SET
    queue = EXCLUDED.queue, entered_at = EXCLUDED.entered_at, position = EXCLUDED.position,
    outcome = EXCLUDED.outcome, wait_s = EXCLUDED.wait_s, talk_s = EXCLUDED.talk_s, agent = EXCLUDED.agent,
    desk = coalesce(queue_visits.desk, EXCLUDED.desk), reason = EXCLUDED.reason
"""


def _utc(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


class RecordStore:
    def __init__(self, pool: asyncpg.Pool):
        self._pool = pool
        self._months: set[date] = set()  # partitions known to exist

    async def _partitions_for(self, conn: Conn, instants: Iterable[datetime]) -> None:
        missing = sorted({month_start(at.date()) for at in instants} - self._months)
        if missing:
            await ensure_partitions(conn, missing)
            self._months.update(missing)

    async def write_facts(self, facts: Sequence[Fact]) -> None:
        """Hotline's side of calls: decisions, IVR ends, SMS outcomes; one transaction."""
        async with self._pool.acquire() as conn, conn.transaction():
            await self._partitions_for(conn, [f.started_at for f in facts])
            entries = [f for f in facts if isinstance(f, EntryRow)]
            if entries:
                await conn.executemany(_ENTRY, [
                    (f.started_at, f.call_id, f.linkedid, f.number, f.tier, f.tier_label, f.brand, f.level,
                     f.queue_priority, f.skill_chain, f.closed_desks, f.access_rule, f.matched, f.degraded,
                     f.lookup_ms, f.entered_at, f.route) for f in entries])
                await conn.executemany(_DETAILS, [(f.started_at, f.call_id, f.identity) for f in entries])
            ivr = [f for f in facts if isinstance(f, IvrRow)]
            if ivr:
                await conn.executemany(_IVR, [(f.started_at, f.call_id, f.ivr_result, f.ivr_path, f.digits, f.service,
                                               f.flow_version) for f in ivr])
            sms = [f for f in facts if isinstance(f, SmsRow)]
            if sms:
                await conn.executemany(_SMS, [(f.started_at, f.call_id, f.status, f.at) for f in sms])
            surveys = [f for f in facts if isinstance(f, SurveyRow)]
            if surveys:
                await conn.executemany(_SURVEY, [(f.started_at, f.call_id, f.result, f.key, f.label, f.satisfied,
                                                  f.agent or None, f.at) for f in surveys])
            await conn.execute(_DIRTY, [f.started_at for f in facts])

    async def quarantine(self, source: str, items: Sequence[tuple[Mapping[str, Any] | str, str]],
                         now: datetime) -> None:
        """Set aside what could not be stored: (the raw input, why), kept as JSON text."""
        if items:
            await self._pool.executemany(
                "INSERT INTO records_quarantine (at, source, raw, reason) VALUES ($1, $2, $3, $4)",
                [(now, source, json.dumps(raw, ensure_ascii=False), reason[:500]) for raw, reason in items])

    async def checkpoint(self, source: str) -> tuple[str, int] | None:
        row = await self._pool.fetchrow("SELECT file_key, line_offset FROM ingest_checkpoints WHERE source = $1",
                                        source)
        return (row["file_key"], row["line_offset"]) if row else None

    async def add_queue_log(self, source: str, file_key: str, rows: Sequence[QueueLogRow], next_offset: int,
                            bad: Sequence[BadLine], desk_of: DeskOf) -> bool:
        """Asterisk's lines from one read, the checkpoint after them, the lines that could not be
        read (into the quarantine, with their place and why) and the calls they touch, in one
        transaction: a crash at any point leaves the file to be read again from the last
        committed checkpoint, and nothing is stored twice. False when another instance is
        reading this source right now (it will store the same lines)."""
        async with self._pool.acquire() as conn, conn.transaction():
            if not await conn.fetchval("SELECT pg_try_advisory_xact_lock(hashtext('queue_log:' || $1))", source):
                return False
            await self._partitions_for(conn, [_utc(r.at) for r in rows])
            if rows:
                await conn.executemany(_QUEUE_LOG, [
                    (_utc(r.at), source, file_key, r.offset, r.callid, r.queue, r.agent, r.event, list(r.data))
                    for r in rows])
            await conn.execute(_CHECKPOINT, source, file_key, next_offset, len(bad))
            if bad:
                now = datetime.now(UTC)
                await conn.executemany(
                    "INSERT INTO records_quarantine (at, source, raw, reason) VALUES ($1, $2, $3, $4)",
                    [(now, source, json.dumps({"file": file_key, "offset": line.offset, "line": line.raw},
                                              ensure_ascii=False), line.reason) for line in bad])
            calls = sorted({r.callid for r in rows if r.callid and r.callid != "NONE"})
            if calls:
                await self.refresh(conn, calls, desk_of)
        return True

    async def refresh(self, conn: Conn, call_ids: Sequence[str], desk_of: DeskOf) -> None:
        """Recompute the queue side of these calls from all their queue_log rows."""
        by_call: dict[str, list[QueueLogRow]] = {}
        for record in await conn.fetch(_CALL_ROWS, list(call_ids)):
            by_call.setdefault(record["callid"], []).append(QueueLogRow(
                record["line_offset"], record["at"], record["callid"], record["queue"], record["agent"],
                record["event"], tuple(record["data"])))
        calls: list[tuple[Any, ...]] = []
        visits: list[tuple[Any, ...]] = []
        for call_id, rows in by_call.items():
            result = summarise(rows, desk_of)
            if not result.offered:
                continue  # only member or unknown events for this id
            begun = _utc(call_started(call_id) or rows[0].at)
            calls.append(_queue_side(begun, call_id, result))
            visits.extend((begun, call_id, index, v.queue, _utc(v.entered_at), v.position, v.outcome, v.wait_s,
                           v.talk_s, v.agent or None, v.desk, v.reason or None)
                          for index, v in enumerate(result.visits))
        await self._partitions_for(conn, [c[0] for c in calls])
        if calls:
            await conn.executemany(_QUEUE_SIDE, calls)
            await conn.executemany(_VISIT, visits)
            await conn.execute(_DIRTY, [c[0] for c in calls])


def _queue_side(begun: datetime, call_id: str, result: QueueOutcome) -> tuple[Any, ...]:
    first, last = result.visits[0], result.visits[-1]
    answering = result.answering
    ended = answering or last
    return (begun, call_id, first.queue, _utc(first.entered_at), len(result.visits), result.outcome,
            answering.agent if answering else None, answering.desk if answering else None, result.wait_s,
            answering.talk_s if answering else None,
            ended.position if ended.outcome == "abandoned" else None, ended.reason or None)
