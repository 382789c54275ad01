"""All SQL of the work orders: create (idempotent by a request key), read, list with filters in
dispatch order, status moves with their audit trail, and a caller's recent history."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from hotline.workorders.rules import Filters, WorkOrderError, check_move, overdue, visible_to
from hotline_core.db import Conn

_CREATE = """
INSERT INTO work_orders (created_at, request_key, linkedid, number, contact, special_customer, special_label, level,
                         category, description, status, priority, reply_due, resolve_due, created_by, updated_at,
                         request_digest)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'new', $11, $12, $13, $14, $1, $15)
ON CONFLICT (request_key) DO NOTHING
RETURNING id
"""


@dataclass(frozen=True, slots=True)
class Caller:
    """Who the order is about, as the hotline fixed it (never as the person typing says)."""

    number: str
    tier: str
    label: str
    level: str | None
    linkedid: str | None


def as_json(row: asyncpg.Record, now: datetime, zone: Any) -> dict[str, Any]:
    order = dict(row)
    for key in ("created_at", "reply_due", "resolve_due", "replied_at", "closed_at", "updated_at"):
        if order.get(key) is not None:
            order[key] = order[key].astimezone(zone).isoformat(timespec="seconds")
    order["overdue"] = overdue(row["status"], row["reply_due"], row["resolve_due"], now)
    order.pop("request_key", None)
    order.pop("request_digest", None)
    return order


@dataclass(frozen=True, slots=True)
class Request:
    """A create's idempotency: its key, scoped to the person and digested whole (any length), and
    the digest of what was asked."""
    key: str
    digest: str

    @classmethod
    def of(cls, actor: str, key: str, fields: Mapping[str, Any]) -> Request:
        asked = {k: v for k, v in fields.items() if k != "request_key"}
        body = json.dumps(asked, sort_keys=True, ensure_ascii=False, default=str)
        return cls(f"{actor}:{hashlib.sha256(key.encode('utf-8', 'surrogatepass')).hexdigest()}",
                   hashlib.sha256(body.encode("utf-8", "surrogatepass")).hexdigest())


class WorkOrders:
    def __init__(self, pool: asyncpg.Pool[Any]):
        self._pool = pool

    async def create(self, caller: Caller, category: str, description: str, contact: str | None, priority: int,
                     reply_due: datetime, resolve_due: datetime, actor: str, role: str, now: datetime,
                     request: Request | None) -> tuple[int, bool]:
        """(order id, created now); the same request again returns the first order, and the same
        key with another body is refused."""
        key, digest = (request.key, request.digest) if request else (None, None)
        async with self._pool.acquire() as conn, conn.transaction():
            order_id = await conn.fetchval(_CREATE, now, key, caller.linkedid, caller.number,
                                           contact or caller.number, caller.tier, caller.label, caller.level, category,
                                           description, priority, reply_due, resolve_due, actor, digest)
            if order_id is None:
                existing = await conn.fetchrow("SELECT id, request_digest FROM work_orders WHERE request_key = $1", key)
                assert existing is not None  # the conflict was with this row; orders are never deleted
                if existing["request_digest"] != digest:
                    raise WorkOrderError("this Idempotency-Key was used before for another request: use a new key "
                                         f"for a new order (order {existing['id']} was filed with it)", conflict=True)
                return int(existing["id"]), False
            await conn.execute("INSERT INTO work_order_events (order_id, at, actor, role, action, to_status) "
                               "VALUES ($1, $2, $3, $4, 'created', 'new')", order_id, now, actor, role)
            return int(order_id), True

    async def get(self, order_id: int) -> asyncpg.Record | None:
        return await self._pool.fetchrow("SELECT * FROM work_orders WHERE id = $1", order_id)

    async def events(self, order_id: int) -> list[asyncpg.Record]:
        return await self._pool.fetch("SELECT at, actor, role, action, from_status, to_status, note "
                                      "FROM work_order_events WHERE order_id = $1 ORDER BY at, id", order_id)

    @staticmethod
    def _where(filters: Filters, role: str, user: str, caller: str | None, now: datetime) -> tuple[str, list[Any]]:
        """The condition for the orders a person may see that match `filters`, and its values."""
        where, args = visible_to(role, user, caller)
        conditions = [where]

        def bind(sql: str, value: Any) -> None:
            args.append(value)
            conditions.append(sql.format(f"${len(args)}"))

        if filters.special:
            bind("special_customer = {}", filters.special)
        if filters.status:
            bind("status = {}", filters.status)
        if filters.category:
            bind("category = {}", filters.category)
        if filters.since:
            bind("created_at >= {}", filters.since)
        if filters.until:
            bind("created_at < {}", filters.until)
        if filters.number:
            bind("number = {}", filters.number)
        if filters.overdue:
            args.append(now)
            n = f"${len(args)}"
            conditions.append(f"((status IN ('new', 'dispatched', 'reopened') AND reply_due < {n}) "
                              f"OR (status <> 'closed' AND resolve_due < {n}))")
        return " AND ".join(conditions), args

    async def find(self, filters: Filters, role: str, user: str, caller: str | None, now: datetime,
                   limit: int = 100, offset: int = 0) -> tuple[list[asyncpg.Record], int]:
        """One page in dispatch order (higher priority first, then the earliest reply deadline,
        then the order number, so pages never overlap), and how many match in all."""
        where, args = self._where(filters, role, user, caller, now)
        async with self._pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            total = int(await conn.fetchval(f"SELECT count(*) FROM work_orders WHERE {where}", *args))
            rows = await conn.fetch(f"SELECT * FROM work_orders WHERE {where} ORDER BY priority DESC, reply_due, id "
                                    f"LIMIT ${len(args) + 1} OFFSET ${len(args) + 2}", *args, limit, offset)
        return list(rows), total

    async def every(self, filters: Filters, role: str, user: str, caller: str | None, now: datetime,
                    batch: int = 1000) -> AsyncIterator[list[asyncpg.Record]]:
        """Every matching order, in dispatch order, a batch at a time from a cursor (an export of
        any size without holding it whole)."""
        where, args = self._where(filters, role, user, caller, now)
        async with self._pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            cursor = await conn.cursor(f"SELECT * FROM work_orders WHERE {where} ORDER BY priority DESC, reply_due, id",
                                       *args)
            while rows := await cursor.fetch(batch):
                yield rows

    async def move(self, order_id: int, target: str, actor: str, role: str, note: str, reply: str | None,
                   now: datetime) -> asyncpg.Record:
        """One status move, checked against the order as it is now (locked), and recorded."""
        async with self._pool.acquire() as conn, conn.transaction():
            order = await conn.fetchrow("SELECT * FROM work_orders WHERE id = $1 FOR UPDATE", order_id)
            if order is None:
                raise WorkOrderError(f"no work order {order_id}")
            check_move(order["status"], target, role)
            if target == "replied" and not (reply or "").strip():
                raise WorkOrderError("a reply to the customer needs its text (reply)")
            await conn.execute(
                "UPDATE work_orders SET status = $2, updated_at = $3, "
                "replied_at = CASE WHEN $2 = 'replied' THEN $3 ELSE replied_at END, "
                "reply = CASE WHEN $2 = 'replied' THEN $4 ELSE reply END, "
                "reply_sms_job = CASE WHEN $2 = 'replied' THEN NULL ELSE reply_sms_job END, "
                "closed_at = CASE WHEN $2 = 'closed' THEN $3 WHEN $2 = 'reopened' THEN NULL ELSE closed_at END "
                "WHERE id = $1", order_id, target, now, (reply or "").strip() or None)
            await conn.execute("INSERT INTO work_order_events (order_id, at, actor, role, action, from_status, "
                               "to_status, note) VALUES ($1, $2, $3, $4, 'moved', $5, $6, $7)",
                               order_id, now, actor, role, order["status"], target, note or None)
            moved: asyncpg.Record | None = await conn.fetchrow("SELECT * FROM work_orders WHERE id = $1", order_id)
            assert moved is not None
            return moved

    async def note_reply_sms(self, order_id: int, job_id: str) -> None:
        await self._pool.execute("UPDATE work_orders SET reply_sms_job = $2 WHERE id = $1", order_id, job_id)

    async def replies_without_sms(self, now: datetime) -> list[asyncpg.Record]:
        return await self._pool.fetch(
            "SELECT * FROM work_orders WHERE reply IS NOT NULL AND reply_sms_job IS NULL "
            "AND replied_at > $1::timestamptz - interval '1 day' "
            "AND replied_at < $1::timestamptz - interval '10 seconds'", now)

    async def recorded_call(self, linkedid: str | None = None, number: str | None = None) -> asyncpg.Record | None:
        """The call with this linkedid, or this number's last call, from the call records."""
        if linkedid:
            return await self._pool.fetchrow("SELECT number, tier, tier_label, level, linkedid FROM calls "
                                             "WHERE linkedid = $1 ORDER BY started_at DESC LIMIT 1", linkedid)
        return await self._pool.fetchrow("SELECT number, tier, tier_label, level, linkedid FROM calls "
                                         "WHERE number = $1 ORDER BY started_at DESC LIMIT 1", number)

    async def history(self, number: str, limit: int = 5) -> tuple[list[asyncpg.Record], list[asyncpg.Record]]:
        """A caller's last calls (from the call records) and their orders not yet closed."""
        calls = await self._pool.fetch(
            "SELECT started_at, linkedid, tier, level, service, outcome, agent, wait_s, talk_s FROM calls "
            "WHERE number = $1 ORDER BY started_at DESC LIMIT $2", number, limit)
        orders = await self._pool.fetch(
            "SELECT id, created_at, category, status, special_label, reply_due FROM work_orders "
            "WHERE number = $1 AND status <> 'closed' ORDER BY created_at DESC LIMIT $2", number, limit)
        return calls, orders

    @staticmethod
    async def complaints(conn: Conn, since: datetime, until: datetime) -> list[asyncpg.Record]:
        """Per tier and category: orders filed, replied, replied by the reply deadline."""
        return await conn.fetch(
            "SELECT special_customer AS tier, category, count(*) AS orders, "
            "count(replied_at) AS replied, count(*) FILTER (WHERE replied_at <= reply_due) AS replied_on_time "
            "FROM work_orders WHERE created_at >= $1 AND created_at < $2 GROUP BY 1, 2", since, until)
