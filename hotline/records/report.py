"""Reports by tier, level, desk, service, agent, hour or day: counts from SQL, figures here (pure).

The formulas (also in docs/operations.md, "Reports"):

- offered: calls that asked for a human, i.e. entered at least one queue (or were refused at a
  full queue's door); a call that visits two queues is one offered call.
- answer rate = answered / offered.
- service level = answered within the level's `service_level_seconds` / offered; the second
  figure leaves short abandons (abandoned within the policy's `short_abandon_seconds`) out of
  the offered calls: answered in time / (offered - short abandons).
- today's figures (the board, `hotline status`) count only calls whose outcome is known or whose
  wait has passed the threshold: a caller still waiting within it is left out of the offered
  calls of both rates until then (else one waiting caller would turn a quiet level red).
- ASA = total wait of answered calls / answered (every queue visit up to the answer counts).
- AHT = total talk time / answered calls with a known talk time (no wrap-up time is configured
  in the shipped queues, so handle time is talk time).
- abandoned: the caller hung up (or pressed out) while queued; released: the system gave up
  (the level's maximum wait, no agent, or the queue full); IVR only: the call ended in the IVR.
- overflow share = answered by an agent outside the caller's first desk / answered (a caller
  whose chain starts with the everyone group cannot overflow).
- satisfaction (csat) = surveys answered with a key the policy's scale counts as satisfied /
  surveys answered with a key of the scale (no answer, invalid keys and hang-ups left out).
- first-contact resolution (fcr) = answered calls resolved at first contact / answered calls
  decided: a call is decided once the policy's window (measurement.fcr_window_hours) has passed,
  and resolved when its number reached no agent again and no work order was filed about it
  within the window; calls still inside their window, or without a caller number, are not counted.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from hotline_core.db import Conn
from hotline_core.policy import NORMAL, TIERS, Policy, access_level

DIMENSIONS = ("tier", "level", "desk", "service", "agent", "hour", "day")
COUNTS = ("calls", "offered", "answered", "answered_in_sl", "abandoned", "short_abandoned", "released", "ivr_only",
          "wait_sum", "talk_sum", "talked", "overflowed", "sms_delivered", "survey_offered", "surveyed", "satisfied",
          "fcr_decided", "fcr_resolved")
# Dimensions the per-agent rollup (agent_hours) can answer; with any other, the calls are read.
AGENT_ROLLUP_DIMENSIONS = frozenset({"agent", "hour", "day"})
# Every query starts with the policy's figures, typed once as $1..$7 whichever of them it uses.
_POLICY = ("WITH p AS (SELECT $3::text AS fallback_level, $4::text AS zone, $5::int AS fallback_sl, "
           "$6::int AS short_s, $7::text AS everyone) ")
_CALLS = ("FROM calls c CROSS JOIN p "
          "LEFT JOIN unnest($1::text[], $2::int[]) AS t(level, sl) ON t.level = c.level ")
_KEYS = {  # a group key, from the calls (raw) and from the hourly rollup
    "tier": ("coalesce(c.tier, 'normal')", "h.tier"),
    "level": ("coalesce(c.level, p.fallback_level)", "h.level"),
    "desk": ("coalesce(c.desk, '')", "h.desk"),
    "service": ("coalesce(c.service, '')", "h.service"),
    "agent": ("coalesce(c.agent, c.survey_agent, '')", "h.agent"),
    "hour": ("extract(hour FROM c.started_at AT TIME ZONE p.zone)::int",
             "extract(hour FROM h.hour AT TIME ZONE p.zone)::int"),
    "day": ("(c.started_at AT TIME ZONE p.zone)::date", "(h.hour AT TIME ZONE p.zone)::date"),
}
_COUNTS_SQL = """
    count(*) AS calls,
    count(*) FILTER (WHERE visits > 0) AS offered,
    count(*) FILTER (WHERE queue_outcome = 'answered') AS answered,
    count(*) FILTER (WHERE queue_outcome = 'answered' AND wait_s <= coalesce(t.sl, p.fallback_sl)) AS answered_in_sl,
    count(*) FILTER (WHERE queue_outcome = 'abandoned') AS abandoned,
    count(*) FILTER (WHERE queue_outcome = 'abandoned' AND coalesce(wait_s, 0) < p.short_s) AS short_abandoned,
    count(*) FILTER (WHERE queue_outcome = 'released') AS released,
    count(*) FILTER (WHERE outcome = 'ivr') AS ivr_only,
    coalesce(sum(wait_s) FILTER (WHERE queue_outcome = 'answered'), 0) AS wait_sum,
    coalesce(sum(talk_s) FILTER (WHERE queue_outcome = 'answered'), 0) AS talk_sum,
    count(talk_s) FILTER (WHERE queue_outcome = 'answered') AS talked,
    count(*) FILTER (WHERE queue_outcome = 'answered' AND desk IS NOT NULL AND skill_chain IS NOT NULL
                     AND desk <> skill_chain[1] AND skill_chain[1] <> p.everyone) AS overflowed,
    count(*) FILTER (WHERE sms_status = 'delivered') AS sms_delivered,
    count(survey_result) AS survey_offered,
    count(*) FILTER (WHERE survey_result = 'answered') AS surveyed,
    count(*) FILTER (WHERE survey_result = 'answered' AND survey_satisfied) AS satisfied,
    count(fcr) FILTER (WHERE queue_outcome = 'answered') AS fcr_decided,
    count(*) FILTER (WHERE queue_outcome = 'answered' AND fcr) AS fcr_resolved
"""
_ROLLUP = (_POLICY + "INSERT INTO call_hours SELECT date_trunc('hour', c.started_at), coalesce(c.tier, 'normal'), "
           "coalesce(c.level, p.fallback_level), coalesce(c.desk, ''), coalesce(c.service, ''), "
           f"coalesce(t.sl, p.fallback_sl), p.short_s, {_COUNTS_SQL} {_CALLS}"
           "WHERE c.started_at >= $8 AND c.started_at < $9 "
           "AND date_trunc('hour', c.started_at) = ANY($10::timestamptz[]) GROUP BY 1, 2, 3, 4, 5, 6, 7")
_AGENT_ROLLUP = (_POLICY + "INSERT INTO agent_hours SELECT date_trunc('hour', c.started_at), "
                 f"coalesce(c.agent, c.survey_agent, ''), {_COUNTS_SQL} {_CALLS}"
                 "WHERE c.started_at >= $8 AND c.started_at < $9 "
                 "AND date_trunc('hour', c.started_at) = ANY($10::timestamptz[]) GROUP BY 1, 2")
_STALE = (_POLICY + "SELECT DISTINCT h.hour FROM call_hours h CROSS JOIN p "
          "LEFT JOIN unnest($1::text[], $2::int[]) AS t(level, sl) ON t.level = h.level "
          "WHERE h.hour >= $8 AND h.hour < $9 AND (h.sl_s <> coalesce(t.sl, p.fallback_sl) OR h.short_s <> p.short_s) "
          "UNION SELECT hour FROM dirty_hours WHERE hour >= $8 AND hour < $9")
# First-contact resolution, decided once per answered call when its window has passed (see the
# formulas above): the call's hour is marked dirty, so the rollups count the verdict.
_DECIDE_FCR = """
WITH decided AS (
    UPDATE calls c SET fcr = NOT EXISTS (
            SELECT 1 FROM calls n
            WHERE n.number = c.number AND n.started_at > c.started_at AND n.started_at <= c.started_at + $1::interval
              AND n.queue_outcome = 'answered')
        AND NOT EXISTS (
            SELECT 1 FROM work_orders w
            WHERE w.created_at >= c.started_at AND w.created_at <= c.started_at + $1::interval
              AND (w.linkedid = c.linkedid OR (w.linkedid IS NULL AND w.number = c.number)))
    WHERE c.queue_outcome = 'answered' AND c.fcr IS NULL AND c.number IS NOT NULL
      AND c.started_at >= $2::timestamptz AND c.started_at < $3::timestamptz - $1::interval
    RETURNING date_trunc('hour', c.started_at) AS hour)
INSERT INTO dirty_hours SELECT DISTINCT hour FROM decided ON CONFLICT DO NOTHING
"""
ROLLUP_BATCH_HOURS = 48
# One number for every instance and process: one rollup writer at a time.
ROLLUP_LOCK = 0x686C7275  # "hlru"


class ReportError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Period:
    start: datetime  # inclusive, aware
    end: datetime  # exclusive, aware

    @classmethod
    def days(cls, first: date, last: date, policy: Policy) -> Period:
        if last < first:
            raise ReportError(f"--to {last} is before --from {first}")
        for name, day in (("--from", first), ("--to", last)):
            if not date(2000, 1, 1) <= day <= date(2999, 12, 31):
                raise ReportError(f"{name} {day}: a day from 2000-01-01 to 2999-12-31")
        zone = policy.zone
        return cls(datetime.combine(first, time(), zone), datetime.combine(last + timedelta(days=1), time(), zone))


def parse_by(text: str) -> tuple[str, ...]:
    dims = tuple(d.strip() for d in text.split(",") if d.strip())
    unknown = [d for d in dims if d not in DIMENSIONS]
    if unknown or not dims:
        raise ReportError(f"--by {text!r}: choose from {', '.join(DIMENSIONS)} (comma separated)")
    if len(set(dims)) != len(dims):
        raise ReportError(f"--by {text!r} names a dimension twice")
    return dims


def policy_args(policy: Policy) -> list[Any]:
    fallback = access_level(policy, NORMAL, "unknown")
    return [[lv.name for lv in policy.levels], [lv.service_level_seconds for lv in policy.levels], fallback.name,
            policy.timezone, fallback.service_level_seconds, policy.reports.short_abandon_seconds,
            policy.everyone_group]


def _positions(by: Sequence[str]) -> str:
    # By position: a GROUP BY name would mean the raw column, not the coalesced key.
    return ", ".join(str(i + 1) for i in range(len(by)))


def raw_sql(by: Sequence[str]) -> str:
    keys = ", ".join(f"{_KEYS[d][0]} AS {d}" for d in by)
    return (_POLICY + f"SELECT {keys}, {_COUNTS_SQL} {_CALLS}"
            f"WHERE c.started_at >= $8 AND c.started_at < $9 GROUP BY {_positions(by)}")


def rollup_report_sql(by: Sequence[str]) -> str:
    keys = ", ".join(f"{_KEYS[d][1]} AS {d}" for d in by)
    sums = ", ".join(f"sum(h.{name})::bigint AS {name}" for name in COUNTS)
    table = "agent_hours" if "agent" in by else "call_hours"
    # $1, $2 (the levels) are typed by a no-op so every query takes the same arguments; $10 are
    # the hours the rollup does not hold correctly yet (read from the calls instead).
    return (_POLICY + f"SELECT {keys}, {sums} FROM {table} h CROSS JOIN p "
            "WHERE h.hour >= $8 AND h.hour < $9 AND cardinality($1::text[]) = cardinality($2::int[]) "
            f"AND h.hour <> ALL($10::timestamptz[]) GROUP BY {_positions(by)}")


def recent_sql(by: Sequence[str]) -> str:
    """The raw counts of the hours in $10 only (those not rolled up yet, or stale)."""
    keys = ", ".join(f"{_KEYS[d][0]} AS {d}" for d in by)
    return (_POLICY + f"SELECT {keys}, {_COUNTS_SQL} {_CALLS}"
            "WHERE c.started_at >= $8 AND c.started_at < $9 "
            f"AND date_trunc('hour', c.started_at) = ANY($10::timestamptz[]) GROUP BY {_positions(by)}")


async def stale_hours(conn: Conn, policy: Policy, period: Period) -> list[datetime]:
    """The hours of `period` that writers marked since they were rolled up, or whose thresholds
    the policy has since changed (read only)."""
    return sorted(r["hour"] for r in await conn.fetch(_STALE, *policy_args(policy), period.start, period.end))


async def refresh_rollup(conn: Conn, policy: Policy, period: Period) -> int:
    """Recompute the stale hours of `period`; returns how many were recomputed. The rollup's one
    writer (`hotline.records.service.keep_rollup`, under ROLLUP_LOCK) calls this; reports never do."""
    args = policy_args(policy)
    hours = await stale_hours(conn, policy, period)
    for n in range(0, len(hours), ROLLUP_BATCH_HOURS):
        batch = hours[n:n + ROLLUP_BATCH_HOURS]
        async with conn.transaction():
            # Unmark first: a writer that marks one of these hours again meanwhile waits for
            # this transaction and leaves its mark for the next refresh.
            await conn.execute("DELETE FROM dirty_hours WHERE hour = ANY($1::timestamptz[])", batch)
            await conn.execute("DELETE FROM call_hours WHERE hour = ANY($1::timestamptz[])", batch)
            await conn.execute("DELETE FROM agent_hours WHERE hour = ANY($1::timestamptz[])", batch)
            await conn.execute(_ROLLUP, *args, batch[0], batch[-1] + timedelta(hours=1), batch)
            await conn.execute(_AGENT_ROLLUP, *args, batch[0], batch[-1] + timedelta(hours=1), batch)
    return len(hours)


async def decide_fcr(conn: Conn, policy: Policy, since: datetime, now: datetime) -> None:
    """Give every answered call since `since` whose window has passed its verdict (the rollup's
    writer calls this, under ROLLUP_LOCK, before it recomputes the hours)."""
    window = timedelta(hours=policy.measurement.fcr_window_hours)
    await conn.execute(_DECIDE_FCR, window, since, now)


def _merge(parts: Sequence[Sequence[Mapping[str, Any]]], by: Sequence[str]) -> list[dict[str, Any]]:
    """Counts of the same group from the rollup and from the raw calls, added (pure)."""
    merged: dict[tuple[Any, ...], dict[str, Any]] = {}
    for rows in parts:
        for row in rows:
            key = tuple(row[d] for d in by)
            into = merged.get(key)
            if into is None:
                merged[key] = {**{d: row[d] for d in by}, **{name: int(row[name]) for name in COUNTS}}
            else:
                for name in COUNTS:
                    into[name] += int(row[name])
    return list(merged.values())


async def fetch_counts(conn: Conn, policy: Policy, period: Period, by: Sequence[str]) -> list[dict[str, Any]]:
    """Counts per group, read only: the hourly rollups for the hours they hold correctly and the
    calls themselves for the few they do not yet (so a report is never stale and never writes);
    by agent, the per-agent rollup (with hour or day at most: the calls alone otherwise)."""
    args = policy_args(policy)
    if "agent" in by and not set(by) <= AGENT_ROLLUP_DIMENSIONS:
        return [dict(row) for row in await conn.fetch(raw_sql(by), *args, period.start, period.end)]
    # One snapshot for both reads: the upkeep committing between them would count an hour twice.
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        stale = await stale_hours(conn, policy, period)
        rolled = await conn.fetch(rollup_report_sql(by), *args, period.start, period.end, stale)
        recent: list[Any] = []
        if stale:
            start, end = max(period.start, stale[0]), min(period.end, stale[-1] + timedelta(hours=1))
            recent = await conn.fetch(recent_sql(by), *args, start, end, stale)
    return _merge([rolled, recent], by)


def overflow_step(chain: Sequence[str], desk: str | None, everyone: str) -> int | None:
    """Which group of the caller's chain the answering agent was reached through (0: the first)."""
    groups = list(chain)
    if desk is not None and desk in groups:
        return groups.index(desk)
    return groups.index(everyone) if everyone in groups else None


def _ratio(part: float, whole: float) -> float | None:
    return round(part / whole, 4) if whole else None


def figures(counts: Mapping[str, Any], policy: Policy, level: str | None) -> dict[str, Any]:
    """The published figures of one group from its counts (pure). `waiting_within_sl` (today's
    figures only): calls still waiting within the threshold, not yet counted as offered."""
    offered = int(counts["offered"]) - int(counts.get("waiting_within_sl", 0))
    answered = int(counts["answered"])
    in_sl, short = int(counts["answered_in_sl"]), int(counts["short_abandoned"])
    out: dict[str, Any] = {
        "calls": int(counts["calls"]),
        "offered": offered,
        "answered": answered,
        "answer_rate": _ratio(answered, offered),
        "service_level": _ratio(in_sl, offered),
        "service_level_excl_short": _ratio(in_sl, offered - short),
        "asa_s": round(int(counts["wait_sum"]) / answered, 1) if answered else None,
        "aht_s": round(int(counts["talk_sum"]) / int(counts["talked"]), 1) if int(counts["talked"]) else None,
        "abandoned": int(counts["abandoned"]),
        "short_abandoned": short,
        "released": int(counts["released"]),
        "ivr_only": int(counts["ivr_only"]),
        "overflow_share": _ratio(int(counts["overflowed"]), answered),
        "sms_delivered": int(counts["sms_delivered"]),
        "surveyed": int(counts["surveyed"]),
        "csat": _ratio(int(counts["satisfied"]), int(counts["surveyed"])),
        "fcr_decided": int(counts["fcr_decided"]),
        "fcr": _ratio(int(counts["fcr_resolved"]), int(counts["fcr_decided"])),
    }
    if level is not None and level in {lv.name for lv in policy.levels}:
        target = policy.level(level).answer_rate_target
        out["answer_rate_target"] = target
        out["below_target"] = out["answer_rate"] is not None and out["answer_rate"] < target
    return out


def _domain(dim: str, policy: Policy) -> list[Any] | None:
    """Dimensions whose values are known in advance: every one appears, with zeros if need be."""
    if dim == "tier":
        return [*TIERS, NORMAL]
    if dim == "level":
        return [lv.name for lv in policy.levels]
    return None


def build_report(counted: list[dict[str, Any]], by: Sequence[str], policy: Policy) -> list[dict[str, Any]]:
    """One object per group: its keys (and labels for tier and level) and its figures (pure)."""
    found = {tuple(row[d] for d in by): row for row in counted}
    axes = []
    for index, dim in enumerate(by):
        seen = sorted({key[index] for key in found}, key=str)
        axes.append(_domain(dim, policy) or seen)
    zero = dict.fromkeys(COUNTS, 0)
    out = []
    for key in itertools.product(*axes):
        counts = found.get(key, zero)
        row: dict[str, Any] = {}
        for dim, value in zip(by, key, strict=True):
            row[dim] = value.isoformat() if isinstance(value, date) else value
            if dim == "tier":
                row["tier_label"] = policy.tier_label(str(value))
            elif dim == "level" and value in {lv.name for lv in policy.levels}:
                row["level_label"] = policy.level(str(value)).label
        row.update(figures(counts, policy, str(key[by.index("level")]) if "level" in by else None))
        out.append(row)
    return out


def against_all(rows: Sequence[dict[str, Any]], counted: Sequence[Mapping[str, Any]],
                policy: Policy) -> list[dict[str, Any]]:
    """Each group's answer rate (in percentage points) and AHT (in seconds) against the whole
    hotline's over the same calls: the operators' benchmark ("new subscribers answered at 90%,
    two points above the average; 75 s, ten seconds below") (pure)."""
    total = {name: sum(int(row[name]) for row in counted) for name in COUNTS}
    overall = figures(total, policy, None)
    out = []
    for row in rows:
        rate, aht = row["answer_rate"], row["aht_s"]
        out.append({**row,
                    "answer_rate_vs_all": None if rate is None or overall["answer_rate"] is None
                    else round((rate - overall["answer_rate"]) * 100, 1),
                    "aht_vs_all_s": None if aht is None or overall["aht_s"] is None
                    else round(aht - overall["aht_s"], 1)})
    return out


# Calls of the day still waiting in a queue within their level's threshold, at $10 (now).
_WAITING = (_POLICY + "SELECT coalesce(c.level, p.fallback_level) AS level, count(*) AS waiting_within_sl "
            f"{_CALLS}WHERE c.started_at >= $8 AND c.started_at < $9 AND c.queue_outcome = 'waiting' "
            "AND c.queue_entered_at > $10::timestamptz - make_interval(secs => coalesce(t.sl, p.fallback_sl)) "
            "GROUP BY 1")


async def figures_by_level(conn: Conn, policy: Policy, day: date, now: datetime) -> dict[str, dict[str, Any]]:
    """One day's figures per level, every level present (the live board, `hotline status`), a
    caller still waiting within the threshold not yet counted (see the formulas)."""
    period = Period.days(day, day, policy)
    counted = await fetch_counts(conn, policy, period, ("level",))
    waiting = {row["level"]: int(row["waiting_within_sl"])
               for row in await conn.fetch(_WAITING, *policy_args(policy), period.start, period.end, now)}
    for row in counted:
        row["waiting_within_sl"] = waiting.get(row["level"], 0)
    return {row["level"]: row for row in build_report(counted, ("level",), policy)}
