"""Complaint work orders: their pages and API (with who may use them), the sweep that sends
replies a crash kept back, and their tables."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import asyncpg
import structlog
from redis.asyncio import Redis

from agi.records import CallRecords
from hotline.workorders.service import WorkOrderService
from hotline.workorders.store import WorkOrders
from hotline.workorders.web import WorkOrderPages
from hotline_core.feature import AGENT, STAFF, Feature
from hotline_core.loops import every
from hotline_core.numbers import NumberPlan
from hotline_core.policy import Policy
from hotline_core.quota import Quota

SCHEMA = "hotline.workorders"  # migrations/ beside this module
# Which orders each person may see within these is the service's business (hotline.workorders.web).
ACCESS = (("/api/workorders", STAFF), ("/workorders", STAFF), ("/api/screen", AGENT))
log = structlog.get_logger("workorders")


async def sweep_replies(orders: WorkOrderService, every_s: float = 30.0) -> None:
    """Replies committed whose SMS a crash kept from being queued go out here (once: marked)."""
    async def sweep() -> None:
        sent = await orders.send_pending_replies()
        if sent:
            log.info("reply SMS queued after the fact", orders=sent)

    await every(every_s, sweep, "reply sweep", first_s=every_s)


def pages_feature(service: WorkOrderService, redis: Redis, prefix: str, records: CallRecords,
                  policy: Policy) -> Feature:
    """The pages and API alone (a test may drive a service of its own making)."""
    return Feature("work orders", routes=WorkOrderPages(service, redis, prefix, records, policy).routes(),
                   access=ACCESS, loops={"reply sweep": lambda: sweep_replies(service)}, migrations=SCHEMA)


def workorders_feature(pool: asyncpg.Pool[Any], redis: Redis, prefix: str, records: CallRecords, policy: Policy,
                       plan: NumberPlan, now: Callable[[], datetime],
                       send_reply: Callable[[str, str, str], Awaitable[str | None]]) -> Feature:
    service = WorkOrderService(WorkOrders(pool), records, policy, plan, now, send_reply, Quota(redis, prefix))
    return pages_feature(service, redis, prefix, records, policy)
