"""What the call records say callers asked of each level, hour by hour of the day: the traffic a
what-if replays (`hotline whatif --from-records`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg

from hotline.records.report import Period

# Calls that asked for an agent (they have a queue), by the level fixed at entry and the local
# hour they started. Every queued caller's wait counts toward patience: those answered or
# released waited at least that long without giving up (censored), those who abandoned gave up.
_DEMAND = """
SELECT level,
       extract(hour FROM started_at AT TIME ZONE $3)::int AS hour,
       count(*) AS calls,
       count(*) FILTER (WHERE queue_outcome = 'answered') AS answered,
       coalesce(sum(talk_s) FILTER (WHERE queue_outcome = 'answered'), 0)::float8 AS talk_s,
       coalesce(sum(wait_s), 0)::float8 AS wait_s,
       count(*) FILTER (WHERE queue_outcome = 'abandoned') AS abandoned
FROM calls
WHERE started_at >= $1 AND started_at < $2 AND queue IS NOT NULL AND level IS NOT NULL
GROUP BY 1, 2
ORDER BY 1, 2
"""


@dataclass(frozen=True, slots=True)
class HourlyDemand:
    level: str
    hour: int  # local hour of the day, 0-23
    calls: int
    answered: int
    talk_s: float  # total talk time of the answered
    wait_s: float  # total time in queue of every queued caller
    abandoned: int


async def hourly_demand(conn: asyncpg.Connection[Any], period: Period, zone: str) -> list[HourlyDemand]:
    rows = await conn.fetch(_DEMAND, period.start, period.end, zone)
    return [HourlyDemand(r["level"], r["hour"], r["calls"], r["answered"], r["talk_s"], r["wait_s"], r["abandoned"])
            for r in rows]
