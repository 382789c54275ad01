"""The agent screen's push path, without a browser: sign-in, the event stream, one agent's calls only."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from redis.asyncio import Redis

from agi.records import CallRecord, CallRecords
from ami_bridge.roster import Roster, parse_roster
from harness.procs import free_tcp_port
from harness.waiting import until
from hotline.web.access import SignIn
from hotline.web.auth import Sessions, hash_secret, secret_matches
from hotline.web.feature import screens_feature
from hotline.web.pages import pages_app
from hotline.web.screen import Screens, screen_card
from hotline_core.keys import RedisKeys
from hotline_core.redispipe import RedisPipe

ROSTER = """agent_id,name,interface,skills,tenure_start,satisfaction,first_contact_resolution
agent1,李娜,PJSIP/agent1,,2022-01-01,99%,95%
agent2,王芳,PJSIP/agent2,,2022-01-01,98%,94%
"""
RURAL = {"number": "8613800000004", "tier": "rural", "label": "农村", "brand_label": "神州行",
         "level_label": "普通神州行", "greeting": "尊敬的王站长,你好,有什么可以帮到您"}


@pytest.fixture
async def site(redis: Redis, pipe: RedisPipe) -> AsyncIterator[tuple[str, Screens]]:
    sessions = Sessions(redis, "scr")
    # The capacity test below holds 2,000 pages for two agents: the per-person cap raised for it
    # (its own test is test_one_agent_holds_at_most_the_configured_screens).
    feature = screens_feature(redis, "scr", CallRecords(pipe, "scr", 600), sessions, streams_per_person=1000)
    screens = feature.screens
    agents, _ = parse_roster(ROSTER)
    await Roster(redis, "scr").replace_all(agents)
    await sessions.set_secret("agent1", "secret-one")
    await sessions.set_secret("agent2", "secret-two")
    # The service's own assembly: the feature's routes under the rules it declares.
    app = pages_app(sessions, SignIn(sessions, redis, "scr"), [feature.feature])
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_tcp_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    fan_out = asyncio.create_task(feature.feature.loops["screen fan-out"]())
    yield f"http://127.0.0.1:{port}", screens
    fan_out.cancel()
    await runner.cleanup()


async def signed_in(base: str, agent: str, secret: str) -> aiohttp.ClientSession:
    # No connection limit: a test below opens thousands of event streams from one client.
    session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True), connector=aiohttp.TCPConnector(limit=0))
    async with session.post(f"{base}/agent/login", data={"agent_id": agent, "secret": secret},
                            allow_redirects=False) as reply:
        assert reply.status == 303, await reply.text()
    return session


async def next_event(stream: aiohttp.ClientResponse, within: float = 3.0) -> dict[str, object]:
    async with asyncio.timeout(within):
        async for line in stream.content:
            if line.startswith(b"data: "):
                event: dict[str, object] = json.loads(line[6:])
                return event
    raise AssertionError("stream ended")


def test_secrets_are_stored_hashed() -> None:
    stored = hash_secret("secret-one")
    assert "secret-one" not in stored
    assert secret_matches("secret-one", stored)
    assert not secret_matches("secret-two", stored)


def test_the_card_masks_the_number() -> None:
    record = CallRecord("1.1", "1.1", "PJSIP/c", RURAL, 0.0, "ivr", notes={"ivr_path": "hotline:screen>hotline:welcome"})
    card = screen_card(record, "agent1")
    assert card["number"] == "86138****0004"
    assert card["special_customer"] == "农村"
    assert card["ivr_path"] == "screen>welcome"


async def test_a_connected_call_reaches_its_agent_only_and_clears(redis: Redis, site: tuple[str, Screens]) -> None:
    base, screens = site
    key = RedisKeys("scr").call("1.20")
    await redis.hset(key, mapping=CallRecord("1.20", "1.20", "PJSIP/c", RURAL, 0.0, "ivr").to_hash())  # type: ignore[arg-type]
    await redis.hset(key, "ivr_path", "hotline:screen>hotline:welcome>hotline:main_menu>hotline:agent")
    one = await signed_in(base, "agent1", "secret-one")
    two = await signed_in(base, "agent2", "secret-two")
    try:
        async with one.get(f"{base}/agent/events") as stream1, two.get(f"{base}/agent/events") as stream2:
            assert stream1.status == 200
            await asyncio.sleep(0.2)  # both subscribed
            await screens.on_event({"Event": "AgentConnect", "Interface": "PJSIP/agent1", "Uniqueid": "1.20"})
            card = await next_event(stream1)
            assert card["greeting"] == "尊敬的王站长,你好,有什么可以帮到您"
            assert (card["special_customer"], card["number"]) == ("农村", "86138****0004")
            assert card["ivr_path"] == "screen>welcome>main_menu>agent"
            with pytest.raises(TimeoutError):
                await next_event(stream2, within=0.5)  # agent2 sees nothing of agent1's call
            assert await redis.ttl(RedisKeys("scr").screen_call("agent1")) > 3600  # on the screen during the call
            await screens.on_event({"Event": "AgentComplete", "Interface": "PJSIP/agent1", "Uniqueid": "1.20"})
            assert await next_event(stream1) == {"type": "clear", "uniqueid": "1.20"}
            # After the call: the caller stays open to the agent for the complaint form, not for the day.
            assert 0 < await redis.ttl(RedisKeys("scr").screen_call("agent1")) <= 900
    finally:
        await one.close()
        await two.close()


async def test_wrong_secret_and_no_session_are_refused(site: tuple[str, Screens]) -> None:
    base, _ = site
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{base}/agent/login", data={"agent_id": "agent1", "secret": "nope"}) as reply:
            assert reply.status == 403
        async with session.get(f"{base}/agent/events") as reply:
            assert reply.status == 401
        async with session.get(f"{base}/agent") as reply:
            assert "Sign in" in await reply.text()


async def test_two_thousand_screens_share_one_subscription(redis: Redis, site: tuple[str, Screens]) -> None:
    """One serve holds a provincial hotline's screens: 2,000 pages open, sign-in still answers,
    Redis sees one subscription, and a card reaches its agent's pages only."""
    base, screens = site
    before = len(await redis.client_list())
    agent1 = await signed_in(base, "agent1", "secret-one")
    agent2 = await signed_in(base, "agent2", "secret-two")
    streams = []
    try:
        for i in range(2000):
            response = await (agent1 if i % 2 else agent2).get(f"{base}/agent/events")
            assert response.status == 200
            streams.append(response)
        assert sum(len(pages) for pages in screens._pages.values()) == 2000
        assert len(await redis.client_list()) - before <= 3  # no connection per page
        late = await signed_in(base, "agent1", "secret-one")  # sign-in answers under the load
        await late.close()
        key = RedisKeys("scr").call("1.30")
        await redis.hset(key, mapping=CallRecord("1.30", "1.30", "PJSIP/c", RURAL, 0.0, "ivr").to_hash())  # type: ignore[arg-type]
        await screens.on_event({"Event": "AgentConnect", "Interface": "PJSIP/agent1", "Uniqueid": "1.30"})
        card = await next_event(streams[1])  # an agent1 page
        assert card["greeting"] == "尊敬的王站长,你好,有什么可以帮到您"
        with pytest.raises(TimeoutError):
            await next_event(streams[0], within=0.5)  # agent2's pages see nothing
    finally:
        for response in streams:
            response.close()
        await agent1.close()
        await agent2.close()


async def test_one_agent_holds_at_most_the_configured_screens(redis: Redis, pipe: RedisPipe) -> None:
    sessions = Sessions(redis, "cap")
    await sessions.set_secret("agent1", "secret-one")
    feature = screens_feature(redis, "cap", CallRecords(pipe, "cap", 600), sessions, streams_per_person=3)
    app = pages_app(sessions, SignIn(sessions, redis, "cap"), [feature.feature])
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_tcp_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    base = f"http://127.0.0.1:{port}"
    agent = await signed_in(base, "agent1", "secret-one")
    try:
        streams = [await agent.get(f"{base}/agent/events") for _ in range(4)]
        assert [s.status for s in streams] == [200, 200, 200, 429]
        assert await streams[3].text() == "at most 3 open screens per agent; close one\n"
        streams[0].close()
        await until(lambda: len(feature.screens._pages.get("agent1", ())) == 2, "the closed page to be let go")
        again = await agent.get(f"{base}/agent/events")
        assert again.status == 200  # a page closed makes room
        again.close()
        for stream in streams[1:]:
            stream.close()
    finally:
        await agent.close()
        await runner.cleanup()
