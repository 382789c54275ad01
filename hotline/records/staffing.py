"""The virtual desks staffed from what the records measured: `hotline agents desks --measured
[--apply]`, and the policy's monthly re-evaluation (a loop of the records feature).

Applying writes the measured figures into the roster (each agent's `measured` says which); the
AMI bridge re-seats the desks from the roster within its reconcile interval, live (queue members
and penalties change in Asterisk without a reload). Every application is kept in
desk_evaluations with who or what applied it and what changed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from typing import Any

import asyncpg
import structlog

from ami_bridge.desks import DeskAssignment, assign_desks
from ami_bridge.roster import Agent, Roster
from hotline.records.kpis import DeskChange, desk_changes, measured
from hotline.records.partitions import add_months
from hotline.records.report import Period, fetch_counts
from hotline_core.db import Conn
from hotline_core.loops import every
from hotline_core.policy import Policy

log = structlog.get_logger("records.staffing")

SCHEDULE = "schedule"
# One re-evaluation at a time, whichever instance or person starts it.
STAFFING_LOCK = 0x686C7374  # "hlst"


def measurement_period(policy: Policy, today: date) -> Period:
    """The policy's months back from today, today included (the desk rule's "last three months")."""
    first_of = add_months(today, -policy.measurement.months)
    # The same day of that month, or its last day when it has fewer.
    last_day = (add_months(first_of, 1) - timedelta(days=1)).day
    return Period.days(first_of.replace(day=min(today.day, last_day)), today, policy)


@dataclass(frozen=True, slots=True)
class Evaluation:
    period: Period
    today: DeskAssignment  # the desks as the roster's figures give them now
    measured: DeskAssignment  # as the measurements give them
    agents: list[Agent]  # the roster with the measured figures in place
    changes: list[DeskChange]

    def roster_updates(self, current: list[Agent]) -> list[Agent]:
        """The agents whose roster entry the measurements change."""
        now = {a.agent_id: a for a in current}
        return [a for a in self.agents if now.get(a.agent_id) != a]


async def evaluate(conn: Conn, roster: list[Agent], policy: Policy, today: date) -> Evaluation:
    period = measurement_period(policy, today)
    counts = await fetch_counts(conn, policy, period, ("agent",))
    by_agent = {str(row["agent"]): row for row in counts}
    agents = [measured(agent, by_agent.get(agent.agent_id), policy) for agent in roster]
    before = assign_desks(roster, policy, today)
    after = assign_desks(agents, policy, today)
    return Evaluation(period, before, after, agents, desk_changes(before, after))


def changes_json(evaluation: Evaluation, updated: list[Agent]) -> str:
    return json.dumps({
        "period": [evaluation.period.start.isoformat(), evaluation.period.end.isoformat()],
        "moves": [asdict(c) for c in evaluation.changes],
        "figures": {a.agent_id: {"satisfaction": round(a.satisfaction, 4),
                                 "first_contact_resolution": round(a.first_contact_resolution, 4),
                                 "measured": list(a.measured)} for a in updated},
    }, ensure_ascii=False)


async def apply(pool: asyncpg.Pool[Any], roster: Roster, policy: Policy, today: date, applied_by: str,
                at: datetime, period_key: str | None = None) -> Evaluation | None:
    """Evaluate and apply under the staffing lock; recorded in desk_evaluations. With
    `period_key` (the schedule), at most once per period: None when it was done already."""
    async with pool.acquire() as conn:
        await conn.execute("SELECT pg_advisory_lock($1)", STAFFING_LOCK)
        try:
            if period_key is not None and await conn.fetchval(
                    "SELECT 1 FROM desk_evaluations WHERE applied_by = $1 AND period = $2", SCHEDULE, period_key):
                return None
            current = await roster.all()
            evaluation = await evaluate(conn, current, policy, today)
            updated = evaluation.roster_updates(current)
            for agent in updated:
                await roster.put(agent)
            await conn.execute("INSERT INTO desk_evaluations (applied_at, applied_by, period, changes) "
                               "VALUES ($1, $2, $3, $4::jsonb)", at, applied_by, period_key,
                               changes_json(evaluation, updated))
            return evaluation
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", STAFFING_LOCK)


def due_period(policy: Policy, at: datetime) -> str | None:
    """The month whose scheduled re-evaluation is due at `at` (local), or None (pure)."""
    rule = policy.measurement
    local = at.astimezone(policy.zone)
    if rule.reevaluate_day == 0 or (local.day, local.hour) < (rule.reevaluate_day, rule.reevaluate_hour):
        return None
    return f"{local:%Y-%m}"


async def keep_staffed(pool: asyncpg.Pool[Any], roster: Roster, policy: Policy, now: Callable[[], datetime],
                       every_s: float = 600.0) -> None:
    """The policy's monthly re-evaluation, by whichever instance finds it due first."""
    async def upkeep() -> None:
        at = now()
        period = due_period(policy, at)
        if period is None:
            return
        done = await apply(pool, roster, policy, at.astimezone(policy.zone).date(), SCHEDULE, at, period)
        if done is not None:
            log.info("desks re-staffed from the measurements", period=period, moves=len(done.changes),
                     measured=sum(bool(a.measured) for a in done.agents))

    await every(every_s, upkeep, "desk re-evaluation")
