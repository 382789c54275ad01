"""`hotline whatif --from-records`: the traffic of past days read from the call records."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

import asyncpg

from hotline.records.demand import hourly_demand
from hotline.records.report import Period
from hotline.whatif.traffic import traffic_from_demand
from hotline_core.policy import Policy


async def test_traffic_from_two_days_of_records(records_db: tuple[str, asyncpg.Pool[Any]], policy: Policy) -> None:
    _, pool = records_db
    rows = []
    for day in (28, 29):
        at = datetime(2026, 11, day, 10, 0, tzinfo=policy.zone)  # 10:00 local
        for i in range(20):
            outcome = "answered" if i < 16 else "abandoned"
            rows.append((at + timedelta(seconds=60 * i), f"{day}.{i}", "campus", "hotline-campus", outcome,
                         10 if outcome == "answered" else 30, 100 if outcome == "answered" else None))
        # Not asked for an agent (IVR only): not traffic for the queues.
        rows.append((at, f"{day}.ivr", "campus", None, None, None, None))
    rows.append((datetime(2026, 11, 30, 10, tzinfo=policy.zone), "later", "campus", "hotline-campus", "answered",
                 1, 50))  # outside the period
    async with pool.acquire() as conn:
        await conn.executemany("INSERT INTO calls (started_at, call_id, level, queue, queue_outcome, wait_s, talk_s) "
                               "VALUES ($1, $2, $3, $4, $5, $6, $7)", rows)
        period = Period.days(date(2026, 11, 28), date(2026, 11, 29), policy)
        demand = await hourly_demand(conn, period, policy.timezone)
    traffic = traffic_from_demand([(d.level, d.hour, d.calls, d.answered, d.talk_s, d.wait_s, d.abandoned)
                                   for d in demand], 2, policy, "records")
    [stream] = traffic.streams
    assert stream.level == "campus"
    assert stream.rates[10] == 20  # 40 calls over two days, all at 10:00-11:00 local
    assert sum(stream.rates) == 20
    assert stream.handle.mean == 100
    # Patience: every queued caller's wait (32 x 10 s + 8 x 30 s) over the 8 who gave up.
    assert stream.patience is not None
    assert stream.patience.mean == (32 * 10 + 8 * 30) / 8
    assert traffic.hours == 24
