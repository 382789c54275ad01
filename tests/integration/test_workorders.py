"""Work orders through the HTTP API and pages against real PostgreSQL and Redis: the special
customer fixed from the call, idempotent filing, dispatch order, filters and exports, roles,
validation, the audit trail, deadlines under a pinned clock, the reply SMS queued once."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp import web
from openpyxl import load_workbook
from redis.asyncio import Redis

from agi.records import CallRecord, CallRecords
from harness.procs import free_tcp_port
from hotline.sms.jobs import OnceQueue, SmsRequest
from hotline.web.access import SignIn
from hotline.web.auth import Sessions
from hotline.web.pages import pages_app
from hotline.workorders.feature import workorders_feature
from hotline.workorders.service import WorkOrderService
from hotline.workorders.store import WorkOrders
from hotline_core.keys import RedisKeys
from hotline_core.numbers import NumberPlan
from hotline_core.policy import Policy
from hotline_core.redispipe import RedisPipe

PREFIX = "wo"
KEYS = RedisKeys(PREFIX)
RURAL = {"number": "8613800000004", "tier": "rural", "label": "农村", "level": "ordinary_easyown"}
ORDINARY = {"number": "8613800000009", "tier": "normal", "label": "普通", "level": "ordinary_easyown"}
HIGHEND = {"number": "8613800000001", "tier": "highend", "label": "中高端", "level": "highend_easyown"}


@dataclass
class Clock:
    now: datetime = datetime(2026, 11, 30, 2, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Site:
    base: str
    clock: Clock
    records: CallRecords
    redis: Redis

    async def on_screen(self, agent: str, uniqueid: str, identity: dict[str, Any]) -> None:
        """A call connected to the agent, as the AMI listener leaves it in Redis."""
        await self.records.write(CallRecord(uniqueid, uniqueid, "PJSIP/c", identity, 0.0, "ivr"))
        await self.redis.set(KEYS.screen_call(agent), uniqueid)

    async def session(self, user: str, secret: str) -> aiohttp.ClientSession:
        session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        async with session.post(f"{self.base}/login", data={"user": user, "secret": secret},
                                allow_redirects=False) as reply:
            assert reply.status == 303, await reply.text()
        return session


@pytest.fixture
async def site(redis: Redis, pipe: RedisPipe, records_db: tuple[str, asyncpg.Pool[Any]],
               policy: Policy) -> AsyncIterator[Site]:
    async with open_site(redis, pipe, records_db[1], policy) as opened:
        yield opened


@asynccontextmanager
async def open_site(redis: Redis, pipe: RedisPipe, pool: asyncpg.Pool[Any], policy: Policy) -> AsyncIterator[Site]:
    """The work orders' pages as `hotline serve` assembles them (the feature's own builder, its
    quotas included), with a pinned clock."""
    clock = Clock()
    records = CallRecords(pipe, PREFIX, 3600)
    sessions = Sessions(redis, PREFIX)
    await sessions.set_secret("agent1", "agent1-secret")
    await sessions.set_secret("agent2", "agent2-secret")
    await sessions.set_staff("h1", "handler", "handler-secret")
    await sessions.set_staff("boss", "supervisor", "boss-secret-1")
    once = OnceQueue(redis, PREFIX)

    async def send_reply(marker: str, number: str, text: str) -> str | None:
        return await once.add(KEYS.sms_order_reply(marker), SmsRequest("order_reply", "", number, text))

    feature = workorders_feature(pool, redis, PREFIX, records, policy, NumberPlan("86", "CN"), clock, send_reply)
    app = pages_app(sessions, SignIn(sessions, redis, PREFIX), [feature])
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_tcp_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield Site(f"http://127.0.0.1:{port}", clock, records, redis)
    await runner.cleanup()


async def post(session: aiohttp.ClientSession, url: str, body: Any, **headers: str) -> tuple[int, Any]:
    async with session.post(url, json=body, headers=headers) as reply:
        return reply.status, await reply.json()


async def get(session: aiohttp.ClientSession, url: str) -> tuple[int, Any]:
    async with session.get(url) as reply:
        return reply.status, await reply.json()


async def test_an_agent_files_for_the_caller_on_screen_and_cannot_choose_the_tier(site: Site) -> None:
    await site.on_screen("agent1", "1796000000.4", RURAL)
    agent = await site.session("agent1", "agent1-secret")
    try:
        body = {"call": "1796000000.4", "category": "bill", "description": "扣费有误", "special_customer": "highend"}
        status, order = await post(agent, f"{site.base}/api/workorders", body, **{"Idempotency-Key": "k-1"})
        assert status == 201
        assert {k: order[k] for k in ("special_customer", "special_label", "linkedid", "number", "contact", "status",
                                      "category", "created_by", "priority", "overdue")} == {
            "special_customer": "rural", "special_label": "农村", "linkedid": "1796000000.4",
            "number": "8613800000004", "contact": "8613800000004", "status": "new", "category": "bill",
            "created_by": "agent1", "priority": 60, "overdue": False}
        assert order["reply_due"] == "2026-12-01T10:00:00+08:00"  # 24 h for rural liaisons
        again, same = await post(agent, f"{site.base}/api/workorders", body, **{"Idempotency-Key": "k-1"})
        assert (again, same["id"]) == (200, order["id"])  # a retried filing files nothing new
        status, refused = await post(agent, f"{site.base}/api/workorders", {**body, "call": "1796000000.99"})
        assert status == 403
        assert refused["error"] == "agents file orders for the call on their screen"
        for bad, message in (({"call": "1796000000.4", "description": "x"}, "category is missing"),
                             ({"call": "1796000000.4", "category": "bill", "description": "x" * 3000},
                              "at most 2000")):
            status, problem = await post(agent, f"{site.base}/api/workorders", bad)
            assert status == 400
            assert message in problem["error"]
        async with agent.post(f"{site.base}/api/workorders", data=b"{not json",
                              headers={"Content-Type": "application/json"}) as reply:
            assert reply.status == 400
    finally:
        await agent.close()


async def test_the_queue_runs_by_priority_then_deadline_with_filters_and_exports(site: Site,
                                                                                 policy: Policy) -> None:
    handler = await site.session("h1", "handler-secret")
    try:
        ids = {}
        for name, caller in (("ordinary", ORDINARY), ("rural", RURAL), ("highend", HIGHEND)):
            await site.records.write(CallRecord(f"1796000000.{name}", f"1796000000.{name}", "PJSIP/c", caller, 0.0,
                                                "ivr"))
            status, order = await post(handler, f"{site.base}/api/workorders",
                                       {"linkedid": f"1796000000.{name}", "category": "network",
                                        "description": f"=HYPERLINK(\"x\") {name}"})
            assert status == 201, order
            ids[name] = order["id"]
            site.clock.now += timedelta(minutes=1)
        status, unknown = await post(handler, f"{site.base}/api/workorders",
                                     {"number": "13900000000", "category": "other", "description": "no call"})
        assert (status, unknown["special_customer"]) == (201, "normal")
        assert unknown["note"] == "no call of this number on record: filed as normal"
        status, listed = await get(handler, f"{site.base}/api/workorders")
        assert [o["id"] for o in listed][:3] == [ids["highend"], ids["rural"], ids["ordinary"]]
        status, rural = await get(handler, f"{site.base}/api/workorders?special=rural")
        assert [o["id"] for o in rural] == [ids["rural"]]
        async with handler.get(f"{site.base}/api/workorders?special=rural&format=xlsx") as reply:
            sheet = load_workbook(io.BytesIO(await reply.read())).active
        assert sheet is not None
        rows = list(sheet.iter_rows(values_only=True))
        assert rows[0][:5] == ("工单号", "创建时间", "特殊客户", "类别", "状态")
        assert [(r[0], r[2], r[4]) for r in rows[1:]] == [(ids["rural"], "农村", "新建")]
        assert isinstance(rows[1][1], datetime)  # a date Excel can sort and filter, not text
        assert sheet.cell(2, 2).number_format == "yyyy-mm-dd hh:mm"
        assert (sheet.freeze_panes, sheet.auto_filter.ref) == ("A2", "A1:P2")  # header kept, filters on
        assert sheet.cell(1, 1).font.b
        assert sheet.column_dimensions["N"].width > sheet.column_dimensions["A"].width  # as wide as the text
        assert sheet.cell(2, 14).data_type == "s"  # the description stays text, not a formula
        async with handler.get(f"{site.base}/api/workorders?format=csv") as reply:
            data = await reply.read()
        assert data.startswith(b"\xef\xbb\xbf")
        table = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
        assert table[1][13].startswith("'=HYPERLINK")
        status, bad = await get(handler, f"{site.base}/api/workorders?special=vip")
        assert status == 400
        assert "special customer 'vip'" in bad["error"]
        async with handler.get(f"{site.base}/workorders?special=rural") as reply:
            page = await reply.text()
        assert f'data-id="{ids["rural"]}"' in page
        assert f'data-id="{ids["highend"]}"' not in page
        # Deadlines under the pinned clock: five hours on, the high-value order (4 h) is overdue.
        site.clock.now += timedelta(hours=5)
        status, late = await get(handler, f"{site.base}/api/workorders?overdue=1")
        assert [o["id"] for o in late] == [ids["highend"]]
    finally:
        await handler.close()


async def test_moves_by_role_are_audited_and_the_reply_sms_is_queued_once(site: Site, redis: Redis) -> None:
    await site.on_screen("agent1", "1796000001.4", RURAL)
    agent = await site.session("agent1", "agent1-secret")
    handler = await site.session("h1", "handler-secret")
    boss = await site.session("boss", "boss-secret-1")
    other = await site.session("agent2", "agent2-secret")
    try:
        _, order = await post(agent, f"{site.base}/api/workorders",
                              {"category": "service", "description": "态度不好"})
        url = f"{site.base}/api/workorders/{order['id']}"
        status, refused = await post(agent, f"{url}/status", {"status": "dispatched"})
        assert (status, refused["error"]) == (403, "the agent role moves no orders")
        # Nor does an agent learn anything of an order that is not theirs by trying to move it.
        assert (await post(agent, f"{site.base}/api/workorders/999999/status", {"status": "closed"}))[1] == refused
        assert (await get(other, url))[0] == 403  # another agent, another caller
        assert (await get(agent, url))[0] == 200
        assert (await post(handler, f"{url}/status", {"status": "dispatched", "note": "to billing"}))[0] == 200
        status, problem = await post(handler, f"{url}/status", {"status": "replied"})
        assert (status, problem["error"]) == (400, "a reply to the customer needs its text (reply)")
        status, replied = await post(handler, f"{url}/status", {"status": "replied", "reply": "已退费"})
        assert (status, replied["status"], replied["reply_sms_job"] is not None) == (200, "replied", True)
        assert (await post(handler, f"{url}/status", {"status": "replied", "reply": "again"}))[0] == 400
        assert (await post(handler, f"{url}/status", {"status": "closed"}))[0] == 200
        assert (await post(handler, f"{url}/status", {"status": "reopened"}))[0] == 403  # supervisors only
        assert (await post(boss, f"{url}/status", {"status": "reopened"}))[0] == 200
        jobs = await redis.xrange(KEYS.sms_jobs)
        assert [(f["kind"], f["number"], f["text"]) for _, f in jobs] == [
            ("order_reply", "8613800000004", f"您的工单{order['id']}已处理:已退费 如有疑问请致电10086。")]
        _, full = await get(boss, url)
        assert [(e["actor"], e["role"], e["from_status"], e["to_status"]) for e in full["events"]] == [
            ("agent1", "agent", None, "new"), ("h1", "handler", "new", "dispatched"),
            ("h1", "handler", "dispatched", "replied"), ("h1", "handler", "replied", "closed"),
            ("boss", "supervisor", "closed", "reopened")]
        assert full["events"][1]["note"] == "to billing"
        assert (await get(boss, f"{site.base}/api/workorders/999999"))[0] == 404
    finally:
        for session in (agent, handler, boss, other):
            await session.close()


async def test_a_reply_whose_sms_was_never_queued_is_sent_by_the_sweep(site: Site, redis: Redis,
                                                                      records_db: tuple[str, asyncpg.Pool[Any]],
                                                                      policy: Policy, pipe: RedisPipe) -> None:
    """A crash between the committed reply and its SMS: the sweep queues it, once."""
    pool = records_db[1]
    once = OnceQueue(redis, PREFIX)

    async def send_reply(marker: str, number: str, text: str) -> str | None:
        return await once.add(KEYS.sms_order_reply(marker), SmsRequest("order_reply", "", number, text))

    crashed = WorkOrderService(WorkOrders(pool), CallRecords(pipe, PREFIX, 60), policy, NumberPlan("86", "CN"),
                               site.clock, None)
    caller, _ = await crashed.caller_of(None, "13800000004")
    order, _ = await crashed.create(caller, {"category": "bill", "description": "x"}, "cli", "supervisor", None)
    await crashed.move(order["id"], "dispatched", "cli", "supervisor")
    await crashed.move(order["id"], "replied", "cli", "supervisor", reply="好的")
    sweeper = WorkOrderService(WorkOrders(pool), CallRecords(pipe, PREFIX, 60), policy, NumberPlan("86", "CN"),
                               Clock(site.clock.now + timedelta(minutes=1)), send_reply)
    assert await sweeper.send_pending_replies() == 1
    assert await sweeper.send_pending_replies() == 0
    assert await redis.xlen(KEYS.sms_jobs) == 1


def tightened(policy: Policy, **limits: int) -> Policy:
    assert policy.work_orders is not None
    return policy.model_copy(update={"work_orders": policy.work_orders.model_copy(update=limits)})


async def test_a_reply_goes_only_to_the_caller_or_a_domestic_mobile_and_within_its_bounds(site: Site,
                                                                                      redis: Redis) -> None:
    """Staff cannot make the hotline text premium-rate, foreign or satellite numbers, nor send a
    book as one reply."""
    handler = await site.session("h1", "handler-secret")
    try:
        api = f"{site.base}/api/workorders"
        for contact, kind in (("+19005550100", "premium rate number of US"), ("+881612345678", "mobile number of 001"),
                              ("+447911123456", "mobile number of GG"),
                              ("01065529988", "fixed line number of CN")):
            status, problem = await post(handler, api, {"number": "13800000009", "category": "bill",
                                                        "description": "x", "contact": contact})
            assert status == 400, problem
            assert kind in problem["error"], problem
            assert "a reply may go to the caller or to mobile or fixed_line_or_mobile numbers of CN only" in problem["error"]
        status, order = await post(handler, api, {"number": "13800000009", "category": "bill", "description": "x",
                                                  "contact": "13900000001"})
        assert (status, order["contact"]) == (201, "8613900000001")  # another domestic mobile: allowed
        url = f"{api}/{order['id']}/status"
        assert (await post(handler, url, {"status": "dispatched"}))[0] == 200
        status, problem = await post(handler, url, {"status": "replied", "reply": "x" * 1_040_000})
        assert (status, problem["error"]) == (400, "the reply is 1040000 characters; at most 500")
        status, problem = await post(handler, url, {"status": "replied", "reply": "退" * 300})
        assert status == 400
        assert problem["error"].startswith("the reply's SMS would take 5 parts; at most 4")
        status, problem = await post(handler, url, {"status": "replied", "reply": 12})
        assert (status, problem["error"]) == (400, "reply must be text, not int")
        assert (await post(handler, url, {"status": "replied", "reply": "已处理"}))[0] == 200
        jobs = await redis.xrange(KEYS.sms_jobs)
        assert [f["number"] for _, f in jobs] == ["8613900000001"]  # only the accepted reply went out
    finally:
        await handler.close()


async def test_staff_and_numbers_have_quotas_and_a_refusal_says_when_to_try_again(
        redis: Redis, pipe: RedisPipe, records_db: tuple[str, asyncpg.Pool[Any]], policy: Policy) -> None:
    limits = tightened(policy, orders_per_person_per_hour=5, replies_per_person_per_hour=3,
                       replies_per_number_per_day=2)
    async with open_site(redis, pipe, records_db[1], limits) as site:
        handler = await site.session("h1", "handler-secret")
        boss = await site.session("boss", "boss-secret-1")
        try:
            api = f"{site.base}/api/workorders"
            filed = [await post(handler, api, {"number": f"1380000001{i}", "category": "bill", "description": "x"})
                     for i in range(6)]
            assert [status for status, _ in filed] == [201] * 5 + [429]
            assert filed[5][1]["error"].startswith("orders filed: 5 per hour for h1 already; try again in ")
            ids = [order["id"] for status, order in filed if status == 201]
            for order_id in ids:
                assert (await post(handler, f"{api}/{order_id}/status", {"status": "dispatched"}))[0] == 200

            async def reply(session: aiohttp.ClientSession, order_id: int) -> tuple[int, Any]:
                return await post(session, f"{api}/{order_id}/status", {"status": "replied", "reply": "好"})

            assert [(await reply(handler, i))[0] for i in ids[:4]] == [200, 200, 200, 429]  # 3 per person an hour
            # One customer's number: 2 reply SMS a day, whoever sends them (the boss has a quota of their own).
            same = [await post(boss, api, {"number": "13800000077", "category": "bill", "description": "x"})
                    for _ in range(3)]
            for _, order in same:
                assert (await post(boss, f"{api}/{order['id']}/status", {"status": "dispatched"}))[0] == 200
            answers = [await reply(boss, order["id"]) for _, order in same]
            assert [status for status, _ in answers] == [200, 200, 429]
            assert answers[2][1]["error"].startswith("reply SMS to: 2 per day for ")
            assert "8613800000077" not in answers[2][1]["error"]  # the customer's number masked
            async with boss.post(f"{api}/{same[2][1]['id']}/status", json={"status": "replied", "reply": "好"}) as r:
                assert r.status == 429
                assert 0 < int(r.headers["Retry-After"]) <= 86400
            jobs = await redis.xrange(KEYS.sms_jobs)
            assert len(jobs) == 5  # every accepted reply, no refused one
        finally:
            await handler.close()
            await boss.close()


async def test_one_order_holding_control_characters_does_not_fail_the_xlsx_export(site: Site) -> None:
    handler = await site.session("h1", "handler-secret")
    try:
        api = f"{site.base}/api/workorders"
        status, odd = await post(handler, api, {"number": "13800000031", "category": "bill",
                                                "description": "bell\x07 escape\x1b vertical\x0b end"})
        assert status == 201
        assert (await post(handler, api, {"number": "13800000032", "category": "bill", "description": "plain"}))[0] == 201
        async with handler.get(f"{api}?format=xlsx") as reply:
            assert reply.status == 200
            sheet = load_workbook(io.BytesIO(await reply.read())).active
        assert sheet is not None
        descriptions = {row[0]: row[13] for row in sheet.iter_rows(min_row=2, values_only=True)}
        assert descriptions[odd["id"]] == "bell\ufffd escape\ufffd vertical\ufffd end"
        assert len(descriptions) == 2
    finally:
        await handler.close()


async def test_idempotency_keys_are_each_persons_whole_and_bound_to_their_request(site: Site, redis: Redis) -> None:
    """A replay answers the first order; another person's same key is their own request; the
    same key with another body is refused (422); keys differing past 100 characters differ."""
    handler = await site.session("h1", "handler-secret")
    boss = await site.session("boss", "boss-secret-1")
    try:
        api = f"{site.base}/api/workorders"
        body = {"number": "13800000041", "category": "bill", "description": "double charge"}
        first, order = await post(handler, api, body, **{"Idempotency-Key": "k-7"})
        again, replay = await post(handler, api, body, **{"Idempotency-Key": "k-7"})
        assert (first, again, replay["id"]) == (201, 200, order["id"])
        theirs, other = await post(boss, api, body, **{"Idempotency-Key": "k-7"})
        assert theirs == 201
        assert other["id"] != order["id"]  # another person's key: never someone else's order
        changed, problem = await post(handler, api, {**body, "description": "another matter"},
                                      **{"Idempotency-Key": "k-7"})
        assert changed == 422
        assert problem["error"].startswith("this Idempotency-Key was used before for another request")
        long_a, long_b = "x" * 100 + "a", "x" * 100 + "b"
        a, order_a = await post(handler, api, body, **{"Idempotency-Key": long_a})
        b, order_b = await post(handler, api, body, **{"Idempotency-Key": long_b})
        assert (a, b) == (201, 201)
        assert order_a["id"] != order_b["id"]
        # A replay is not counted against the person's quota of orders filed.
        used = await redis.get(KEYS.quota("orders filed", "h1", int(site.clock.now.timestamp() // 3600)))
        assert used == "3"
    finally:
        await handler.close()
        await boss.close()


async def test_lists_come_in_pages_with_a_total_and_exports_hold_every_order(site: Site) -> None:
    handler = await site.session("h1", "handler-secret")
    try:
        api = f"{site.base}/api/workorders"
        await site.on_screen("agent1", "1796000002.1", HIGHEND)
        filed = [(await post(handler, api, {"number": f"1380000005{i}", "category": "bill", "description": "x"}))[1]
                 for i in range(7)]
        seen: list[int] = []
        url: str | None = f"{api}?per_page=3"
        totals = []
        while url:
            async with handler.get(url) as reply:
                assert reply.status == 200
                seen += [o["id"] for o in await reply.json()]
                totals.append(reply.headers["X-Total-Count"])
                link = reply.headers.get("Link")
            url = site.base + link.split(">")[0].lstrip("<") if link else None
        assert totals == ["7", "7", "7"]
        assert sorted(seen) == sorted(o["id"] for o in filed)  # every order once, none pushed out
        for query, message in (("per_page=0", "per_page from 1 to 500"), ("page=x", "whole numbers"),
                               ("per_page=501", "per_page from 1 to 500")):
            status, problem = await get(handler, f"{api}?{query}")
            assert status == 400
            assert message in problem["error"]
        async with handler.get(f"{api}?format=csv&per_page=2") as reply:
            table = list(csv.reader(io.StringIO((await reply.read()).decode("utf-8-sig"))))
        assert len(table) == 1 + 7  # the export holds every order, whatever the page size
        async with handler.get(f"{site.base}/workorders?per_page=3&page=2", headers={"Accept": "text/html"}) as reply:
            page = await reply.text()
        assert "7 order(s) · page 2 of 3" in page
        assert "← previous" in page
        assert "next →" in page
    finally:
        await handler.close()


async def test_odd_requests_are_answered_with_what_was_wrong_never_a_500(site: Site) -> None:
    """The probes of a careless or hostile client: type confusion, NUL, lone surrogates, 100k-deep
    JSON, a 23-digit id, dates out of range, another content type."""
    handler = await site.session("h1", "handler-secret")
    try:
        api = f"{site.base}/api/workorders"
        body = {"number": "13800000061", "category": "bill", "description": "x"}
        probes = [
            ({**body, "number": 13800000061}, 400, "number must be text, not int"),
            ({**body, "linkedid": ["1.2"]}, 400, "linkedid must be text, not list"),
            ({**body, "description": "a\x00b"}, 400, "description contains a NUL character or a lone surrogate"),
        ]
        for fields, status, message in probes:
            got, problem = await post(handler, api, fields)
            assert (got, problem["error"]) == (status, message)
        async with handler.post(api, data="[" * 100_000 + "]" * 100_000,
                                headers={"Content-Type": "application/json"}) as reply:
            assert reply.status == 400
        async with handler.post(api, data='{"number": "\\ud800", "category": "bill", "description": "x"}',
                                headers={"Content-Type": "application/json"}) as reply:
            assert (reply.status, (await reply.json())["error"]) == (400, "number contains a NUL character or a lone "
                                                                          "surrogate")
        async with handler.post(api, data=json.dumps(body), headers={"Content-Type": "text/plain"}) as reply:
            assert reply.status == 415
        assert (await get(handler, f"{api}/{'9' * 23}"))[0] == 404
        assert (await post(handler, f"{api}/{'9' * 23}/status", {"status": "dispatched"}))[0] == 400
        for query in ("to=9999-12-31", "from=0001-01-01"):
            status, problem = await get(handler, f"{api}?{query}")
            assert status == 400
            assert "a date from 2000-01-01 to 2999-12-31" in problem["error"]
        _, order = await post(handler, api, body, **{"Idempotency-Key": "ok"})
        status, problem = await post(handler, f"{api}/{order['id']}/status", {"status": "dispatched", "note": "n\x00"})
        assert (status, problem["error"]) == (400, "note contains a NUL character or a lone surrogate")
    finally:
        await handler.close()
