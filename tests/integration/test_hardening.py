"""What a hostile or careless user tried, against the real servers: sign-in floods, sessions of a
removed or re-keyed agent, framing, forged delivery reports."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import aiohttp
import asyncpg
import pytest
from aiohttp import web
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

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
    app = pages_app(sessions, SignIn(sessions, redis, PREFIX, limits=Limits(pair_free=3, first_delay_s=1, max_delay_s=4, per_user=6, per_address=10, window_s=60)),
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


def from_address(address: str) -> aiohttp.ClientSession:
    """A browser at another address of the loopback range (each 127.x.y.z is this machine)."""
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(address, 0)))


async def test_a_guesser_is_slowed_down_more_and_more_without_locking_the_person_out(
        site: tuple[str, Sessions]) -> None:
    """Test limits: 3 free refusals per id and address, then 1, 2, 4 s waits; 6 refusals of one
    id from addresses it never signed in from."""
    base, _ = site
    async with from_address("127.0.0.3") as usual, from_address("127.0.0.1") as guesser:
        assert (await sign_in(usual, base, "agent1", "agent1-secret")).status == 303  # agent1's own desk
        statuses = [(await sign_in(guesser, base, "agent1", "wrong")).status for _ in range(5)]
        assert statuses == [403, 403, 403, 403, 429]  # the fourth refusal earned a wait
        first = await sign_in(guesser, base, "agent1", "agent1-secret")
        assert first.status == 429  # even the right secret waits from there
        assert first.headers["Retry-After"] == "1"
        await asyncio.sleep(1.1)
        assert (await sign_in(guesser, base, "agent1", "wrong")).status == 403
        second = await sign_in(guesser, base, "agent1", "wrong")
        assert (second.status, second.headers["Retry-After"]) == (429, "2")  # doubled
        # Meanwhile the person signs in from their usual address, and from another one too.
        assert (await sign_in(usual, base, "agent1", "agent1-secret")).status == 303
        async with from_address("127.0.0.4") as elsewhere:
            assert (await sign_in(elsewhere, base, "agent1", "agent1-secret")).status == 303
    # Guessing agent1 from many addresses: past 6 refusals those addresses wait, its usual one does not.
    for i in range(5, 9):
        async with from_address(f"127.0.0.{i}") as spray:
            await sign_in(spray, base, "agent1", "wrong")
    async with from_address("127.0.0.9") as another:
        assert (await sign_in(another, base, "agent1", "agent1-secret")).status == 429
    async with from_address("127.0.0.3") as usual:
        assert (await sign_in(usual, base, "agent1", "agent1-secret")).status == 303


async def test_a_call_centre_behind_one_address_is_not_shut_out_by_its_own_typing(site: tuple[str, Sessions]) -> None:
    """Many people behind one NAT, each mistyping: under the address's cap (10 in these tests,
    300 in 15 minutes by default) nobody waits; a spray of ids past it makes that address wait."""
    base, sessions = site
    for i in range(8):
        await sessions.set_secret(f"floor{i}", f"floor{i}-secret")
    async with from_address("127.0.1.1") as floor:
        assert [(await sign_in(floor, base, f"floor{i}", "typo")).status for i in range(8)] == [403] * 8
        assert [(await sign_in(floor, base, f"floor{i}", f"floor{i}-secret")).status for i in range(8)] == [303] * 8
        assert (await sign_in(floor, base, "boss", "boss-secret-1")).status == 303
        assert [(await sign_in(floor, base, f"spray{i}", "x")).status for i in range(4)] == [403, 403, 403, 429]
        assert (await sign_in(floor, base, "boss", "boss-secret-1")).status == 429


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


async def test_a_flood_of_junk_cookies_never_reaches_redis_and_signed_in_people_are_served(
        site: tuple[str, Sessions], redis: Redis) -> None:
    base, _ = site

    async def gets() -> int:
        stats = await redis.info("commandstats")
        return int(stats.get("cmdstat_get", {}).get("calls", 0))

    before = await gets()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as flood:
        async def junk(i: int) -> int:
            async with flood.get(f"{base}/board", headers={"Cookie": f"hotline_session=junk.{i}" + "x" * (i % 50)},
                                 allow_redirects=False) as reply:
                return reply.status
        statuses = await asyncio.gather(*(junk(i) for i in range(300)))
    assert set(statuses) == {401}
    assert await gets() == before  # not one session lookup for a cookie that cannot be a session
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as boss:
        assert (await sign_in(boss, base, "boss", "boss-secret-1")).status == 303
        async with boss.get(f"{base}/board") as reply:
            assert reply.status == 200  # the real session is looked up as ever


@pytest.mark.parametrize("away", [RedisConnectionError("Connection refused"), OSError(111, "Connection refused"),
                                  asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed")])
async def test_a_store_that_is_away_is_a_503_not_a_500(redis: Redis, away: Exception) -> None:
    sessions = Sessions(redis, PREFIX)

    async def reads_a_store(_request: web.Request) -> web.Response:
        raise away

    app = pages_app(sessions, SignIn(sessions, redis, PREFIX), [Feature("probe", routes=[web.get("/probe", reads_a_store)])])
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_tcp_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/probe") as reply:
            assert reply.status == 503
            assert reply.headers["Retry-After"] == "5"
            assert (await reply.text()).startswith("temporarily unavailable")
    finally:
        await runner.cleanup()
