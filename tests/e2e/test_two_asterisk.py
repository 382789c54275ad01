"""Two Asterisk servers, each with its own `hotline serve` bridging it over AMI, one roster, one
records database; FastAGI by SRV records across both instances.

Calls through both servers are each recorded once (the servers' system names keep their
uniqueids apart); with one Asterisk stopped the other keeps answering; when it returns, its
bridge logs in again and staffs its queues, and its calls are answered and recorded again.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from harness.asterisk import Asterisk, srv_deployment
from harness.dns_server import DnsServer, Srv
from harness.postgres_server import PostgresServer
from harness.procs import free_tcp_port, free_udp_port
from harness.redis_server import RedisServer
from harness.sipp import SippAgent, place_call
from harness.waiting import until, until_sync
from tests.e2e.conftest import AMI_SECRET, Bridge, shared_stores

NAME = "agi.two.test"


@dataclass
class Side:
    asterisk: Asterisk
    bridge: Bridge
    sip_port: int


@dataclass
class Two:
    a: Side
    b: Side
    postgres: PostgresServer


@pytest.fixture(scope="module")
def two(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Two]:
    run_dir = tmp_path_factory.mktemp("two")
    with shared_stores(run_dir, "hotline-two-pg-") as (root, redis, postgres), ExitStack() as started:
        yield from _two(run_dir, root, redis, postgres, started)


def _two(run_dir: Path, root: Path, redis: RedisServer, postgres: PostgresServer, started: ExitStack) -> Iterator[Two]:
    agents = [SippAgent(f"agent{i}", free_udp_port(), 44000 + 4 * i, run_dir) for i in (1, 2, 3)]
    sides = {}
    for side in ("a", "b"):
        side_dir = run_dir / side
        side_dir.mkdir()
        bridge = Bridge(free_tcp_port(), redis.url, side_dir, ami_port=free_tcp_port(), database_url=postgres.url(),
                        source=f"asterisk-{side}")
        sip_port = free_udp_port()
        deployment = srv_deployment(sip_port, bridge.ami_port, AMI_SECRET, NAME, f"asterisk-{side}", agents, 22000)
        asterisk = Asterisk(root, f"two-{side}-{os.getpid()}", deployment, side_dir)
        bridge.queue_log = asterisk.queue_log
        sides[side] = Side(asterisk, bridge, sip_port)
    dns = DnsServer(NAME, [Srv("127.0.0.1", sides[s].bridge.port, 0, 50) for s in ("a", "b")], run_dir, root)
    dns.start()
    started.callback(dns.stop)
    for agent in agents:
        agent.start()
        started.callback(agent.stop)
    for side in sides.values():
        side.asterisk.start()
        started.callback(side.asterisk.stop, remove_files=True)
        side.bridge.start()
        started.callback(side.bridge.stop)
    for side in sides.values():
        until_sync(lambda side=side: side.bridge.applied_since(0), "each bridge to staff its Asterisk's queues")  # type: ignore[misc]
    yield Two(sides["a"], sides["b"], postgres)


async def call(side: Side, caller: str, media: int) -> int:
    result = await place_call(caller, side.sip_port, free_udp_port(), media, digits="0", wait_ms=300, talk_ms=1500)
    return result.returncode


async def _at_least(rows: Callable[[], Awaitable[list[asyncpg.Record]]], count: int) -> list[asyncpg.Record]:
    found = await rows()
    return found if len(found) >= count else []


async def recorded(two: Two, since: float, count: int) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(two.postgres.url())
    try:
        async def rows() -> list[asyncpg.Record]:
            # Finished calls only: a call whose CONNECT the reader has not yet read is still `waiting`.
            return list(await conn.fetch("SELECT call_id, queue_outcome FROM calls WHERE started_at >= "
                                         "to_timestamp($1) AND queue_outcome IS NOT NULL "
                                         "AND queue_outcome <> 'waiting'", since))

        return await until(lambda: _at_least(rows, count), f"{count} calls recorded", 30, every=0.5)
    finally:
        await conn.close()


async def test_calls_through_both_servers_are_recorded_once(two: Two) -> None:
    began = time.time() - 1
    results = await asyncio.gather(*(call(side, f"1390001{i:04d}", 45000 + 8 * i + (4 if side is two.b else 0))
                                     for i in range(3) for side in (two.a, two.b)))
    assert results == [0] * 6
    rows = await recorded(two, began, 6)
    ids = [row["call_id"] for row in rows]
    assert len(ids) == 6
    assert len(set(ids)) == 6  # each call once
    assert sorted(i.split("-")[1] for i in ids) == ["a"] * 3 + ["b"] * 3  # asterisk-a-..., asterisk-b-...
    assert all(row["queue_outcome"] == "answered" for row in rows)


async def test_one_asterisk_stopped_the_other_serves_and_the_bridge_restaffs_on_return(two: Two) -> None:
    two.a.asterisk.stop()
    began = time.time() - 1
    assert await asyncio.gather(*(call(two.b, f"1390002{i:04d}", 46000 + 4 * i) for i in range(2))) == [0, 0]
    mark = two.a.bridge.log_mark()
    two.a.asterisk.start()
    until_sync(lambda: two.a.bridge.applied_since(mark), "bridge A to log in again and staff its queues", 40)
    assert await call(two.a, "13900030001", 46100) == 0
    rows = await recorded(two, began, 3)
    assert sorted(row["call_id"].split("-")[1] for row in rows) == ["a", "b", "b"]
    assert all(row["queue_outcome"] == "answered" for row in rows)


async def test_the_agents_screen_on_one_instance_shows_a_call_of_the_other_server(two: Two) -> None:
    """Agents signed in on hotline serve B; the rural liaison calls Asterisk A (bridged by A):
    the answering agent's page on B shows the card with the personal greeting."""
    base = f"http://127.0.0.1:{two.b.bridge.http_port}"
    sessions, streams = [], []
    try:
        for agent in ("agent1", "agent2", "agent3"):
            session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
            sessions.append(session)
            async with session.post(f"{base}/agent/login", data={"agent_id": agent, "secret": f"{agent}-screen"},
                                    allow_redirects=False) as reply:
                assert reply.status == 303, await reply.text()
            streams.append(await session.get(f"{base}/agent/events"))

        async def first_card(stream: aiohttp.ClientResponse) -> dict[str, object]:
            async for line in stream.content:
                if line.startswith(b"data: "):
                    card: dict[str, object] = json.loads(line[6:])
                    if card.get("greeting"):
                        return card
            raise AssertionError("stream ended")

        waiting = [asyncio.create_task(first_card(s)) for s in streams]
        assert await call(two.a, "13800000004", 46200) == 0
        done, pending = await asyncio.wait(waiting, timeout=10, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        assert done, "no agent's page on instance B showed the call answered through Asterisk A"
        card = done.pop().result()
        assert card["greeting"] == "尊敬的王站长,你好,有什么可以帮到您"
    finally:
        for stream in streams:
            stream.close()
        for session in sessions:
            await session.close()
