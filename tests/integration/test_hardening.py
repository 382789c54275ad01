"""What a hostile or careless user tried, against the real servers: sign-in floods, sessions of a
removed or re-keyed agent, framing, forged delivery reports."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from redis.asyncio import Redis

from harness.procs import free_tcp_port
from hotline.monitor.feature import BOARD_ACCESS
from hotline.sms.reports import report_routes
from hotline.sms.worker import advance
from hotline.web.access import Limits, SignIn
from hotline.web.auth import Sessions
from hotline.web.pages import pages_app
from hotline_core.feature import Feature
from hotline_core.keys import RedisKeys

PREFIX = "hard"


@pytest.fixture
async def site(redis: Redis) -> AsyncIterator[tuple[str, Sessions]]:
    sessions = Sessions(redis, PREFIX)
    await sessions.set_secret("agent1", "agent1-secret")
    await sessions.set_staff("boss", "supervisor", "boss-secret-1")

    async def board(_request: web.Request) -> web.Response:
        return web.Response(text="board")

    # The service's own assembly, with a stand-in page under the board's own access rule.
    app = pages_app(sessions, SignIn(sessions, redis, PREFIX, limits=Limits(per_user=3, per_address=8, window_s=60)),
                    [Feature("sms", routes=report_routes(redis, PREFIX, "report-token")),
                     Feature("board", routes=[web.get("/board", board)], access=BOARD_ACCESS)])
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_tcp_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}", sessions
    await runner.cleanup()


async def sign_in(session: aiohttp.ClientSession, base: str, user: str, secret: str) -> aiohttp.ClientResponse:
    async with session.post(f"{base}/login", data={"user": user, "secret": secret}, allow_redirects=False) as reply:
        await reply.read()
        return reply


async def test_refused_sign_ins_are_limited_per_id_and_per_address(site: tuple[str, Sessions]) -> None:
    base, _ = site
    async with aiohttp.ClientSession() as session:
        statuses = [(await sign_in(session, base, "agent1", "wrong")).status for _ in range(4)]
        assert statuses == [403, 403, 403, 429]
        limited = await sign_in(session, base, "agent1", "agent1-secret")
        assert limited.status == 429  # even the right secret waits out the window
        assert 0 < int(limited.headers["Retry-After"]) <= 60
        # Other ids from the same address: refused until the address's own limit.
        statuses = [(await sign_in(session, base, f"nobody{i}", "wrong")).status for i in range(6)]
        assert statuses[:4] == [403] * 4
        assert statuses[-1] == 429
        assert (await sign_in(session, base, "boss", "boss-secret-1")).status == 429


async def test_unknown_and_known_ids_take_the_same_time_to_refuse(site: tuple[str, Sessions]) -> None:
    _, sessions = site
    timings = {}
    for user in ("agent1", "no-such-agent"):
        started = time.perf_counter()
        assert await sessions.sign_in(user, "wrong") is None
        timings[user] = time.perf_counter() - started
    assert timings["no-such-agent"] > timings["agent1"] / 3  # both hash; neither answers at once


async def test_sign_in_hashing_leaves_the_event_loop_free(site: tuple[str, Sessions]) -> None:
    _, sessions = site
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.005)

    task = asyncio.create_task(ticker())
    started = time.perf_counter()
    await asyncio.gather(*(sessions.sign_in("agent1", "wrong") for _ in range(20)))
    elapsed = time.perf_counter() - started
    task.cancel()
    assert ticks >= elapsed / 0.005 / 4  # the loop kept turning while the hashes ran


async def test_a_new_secret_or_a_removal_ends_the_sessions(site: tuple[str, Sessions], redis: Redis) -> None:
    base, sessions = site
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        assert (await sign_in(session, base, "boss", "boss-secret-1")).status == 303
        async with session.get(f"{base}/board") as reply:
            assert reply.status == 200
            assert reply.headers["X-Frame-Options"] == "DENY"
            assert "frame-ancestors 'none'" in reply.headers["Content-Security-Policy"]
        await sessions.set_staff("boss", "supervisor", "boss-secret-2")
        async with session.get(f"{base}/board") as reply:
            assert reply.status == 401
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        assert (await sign_in(session, base, "agent1", "agent1-secret")).status == 303
        token = next(iter(session.cookie_jar)).value
        assert (await sessions.principal(token)) is not None
        await sessions.remove_agent("agent1")
        assert await sessions.principal(token) is None
        assert (await sign_in(session, base, "agent1", "agent1-secret")).status == 403


async def test_forged_or_stray_delivery_reports_change_nothing(site: tuple[str, Sessions], redis: Redis) -> None:
    base, _ = site
    keys = RedisKeys(PREFIX)
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{base}/sms/dlr", params={"id": "1-1", "status": "1", "token": "Ωmega"}) as reply:
            assert reply.status == 403  # not a server error
        async with session.get(f"{base}/sms/dlr", params={"id": "9-9", "status": "1",
                                                          "token": "report-token"}) as reply:
            assert reply.status == 404
        assert not await redis.exists(keys.sms_state("9-9"))
        assert await redis.hget(keys.sms_counts, "delivered") is None
        await redis.hset(keys.sms_state("1-1"), "attempts", "1")
        await advance(redis, keys, "1-1", "sent")
        for status in ("1", "2"):  # delivered, then a late "failed"
            async with session.get(f"{base}/sms/dlr", params={"id": "1-1", "status": status,
                                                              "token": "report-token"}) as reply:
                assert reply.status == 200
        assert await redis.hget(keys.sms_state("1-1"), "status") == "delivered"
