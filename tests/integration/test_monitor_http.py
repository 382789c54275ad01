"""`hotline serve`'s monitoring over HTTP, as Prometheus, a load balancer and a supervisor use it:
/metrics (token, counts, several workers), /healthz and /readyz (Redis stopped and back), the
board behind the supervisor role, a late tier feed alarming under a pinned clock."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from harness.agi_peer import environment, play
from harness.procs import Managed, alive, free_tcp_port, tcp_listening
from harness.redis_server import RedisServer
from harness.waiting import until
from tests.integration.test_workers import children_of

HOTLINE = str(Path(sys.executable).parent / "hotline")
TOKEN = "scrape-me"


def cli(redis_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HOTLINE_REDIS_URL": redis_url}
    return subprocess.run([HOTLINE, *args], env=env, capture_output=True, text=True, timeout=60, check=False)


class Serve:
    def __init__(self, run_dir: Path, redis_url: str, database_url: str, workers: int = 1,
                 frozen_time: str | None = None, separate_pages: bool = False):
        self.agi_port, self.http_port = free_tcp_port(), free_tcp_port()
        self.process = Managed("hotline serve", run_dir / f"serve-{self.http_port}.pid",
                               run_dir / f"serve-{self.http_port}.log")
        self.env = {**os.environ, "HOTLINE_REDIS_URL": redis_url, "HOTLINE_DATABASE_URL": database_url,
                    "HOTLINE_AGI_PORT": str(self.agi_port), "HOTLINE_HTTP_PORT": str(self.http_port),
                    "HOTLINE_METRICS_TOKEN": TOKEN, "HOTLINE_WORKERS": str(workers), "HOTLINE_LOG_FORMAT": "json"}
        if frozen_time:
            self.env["HOTLINE_FROZEN_TIME"] = frozen_time
        if separate_pages:
            self.env["HOTLINE_SEPARATE_PAGES"] = "true"
        self.base = f"http://127.0.0.1:{self.http_port}"

    async def start(self) -> None:
        self.process.start([HOTLINE, "serve"], env=self.env)
        await until(lambda: tcp_listening(self.http_port) and tcp_listening(self.agi_port),
                    "hotline serve to listen", 20, every=0.05)

    def stop(self) -> None:
        self.process.stop()


@pytest.fixture
async def records_url(records_db: tuple[str, asyncpg.Pool]) -> str:  # type: ignore[type-arg]
    return records_db[0]


async def get(session: aiohttp.ClientSession, url: str, **kw: object) -> tuple[int, str]:
    async with session.get(url, allow_redirects=False, **kw) as reply:  # type: ignore[arg-type]
        return reply.status, await reply.text()


async def scrape(session: aiohttp.ClientSession, base: str) -> dict[str, float]:
    status, text = await get(session, f"{base}/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert status == 200, text
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


@pytest.fixture
async def served(own_redis: RedisServer, records_url: str, tmp_path: Path) -> AsyncIterator[Serve]:
    for table, rows in (("newsub", "number,activated_at\n13800000002,2026-11-01\n"),
                        ("highend", "number\n13800000001\n")):
        path = tmp_path / f"{table}.csv"
        path.write_text(rows)
        assert cli(own_redis.url, "tiers", "import", table, str(path)).returncode == 0
    assert cli(own_redis.url, "users", "add", "boss", "--role", "supervisor", "--secret", "boss-secret-1").returncode == 0
    # The clock pinned 30 hours on: the daily new-subscriber feed (26 h) is late, the monthly
    # high-value table (32 days) is not.
    later = (datetime.now().astimezone() + timedelta(hours=30)).isoformat(timespec="seconds")
    serve = Serve(tmp_path, own_redis.url, records_url, frozen_time=later)
    await serve.start()
    yield serve
    serve.stop()


async def test_metrics_health_and_the_board(served: Serve, own_redis: RedisServer) -> None:
    base = served.base
    for i in range(3):
        result = await play("127.0.0.1", served.agi_port, environment("entry", f"1390000000{i}", f"1796000000.{i}"))
        assert result.variables()["HOTLINE_TIER"] == "normal"
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        assert await get(session, f"{base}/healthz") == (200, "alive\n")
        assert await get(session, f"{base}/readyz") == (200, "ready\n")
        assert (await get(session, f"{base}/metrics"))[0] == 401
        async def late_feed_alarm() -> dict[str, float] | None:
            found = await scrape(session, base)
            return found if found.get('hotline_alarm_active{kind="feed_late",subject="newsub"}') == 1.0 else None

        samples = await until(late_feed_alarm, "the late newsub feed's alarm in /metrics", 10, every=0.3)
        assert samples['hotline_call_entries_total{level="ordinary_easyown",tier="normal"}'] == 3.0
        assert samples["hotline_lookup_seconds_count"] == 3.0
        assert samples.get('hotline_alarm_active{kind="feed_late",subject="highend"}', 0.0) == 0.0
        assert samples['hotline_dependency_up{dependency="redis"}'] == 1.0
        assert samples['hotline_dependency_up{dependency="postgres"}'] == 1.0
        assert samples['hotline_queue_callers_waiting{level="gotone_vip"}'] == 0.0
        assert 'hotline_tier_table_age_seconds{table="newsub"}' in samples

        # The board: a page for supervisors only.
        status, _ = await get(session, f"{base}/board", headers={"Accept": "text/html"})
        assert status == 303
        async with session.post(f"{base}/login", data={"user": "boss", "secret": "wrong-secret"}) as reply:
            assert reply.status == 403
        async with session.post(f"{base}/login", data={"user": "boss", "secret": "boss-secret-1"},
                                headers={"Origin": "http://evil.example"}) as reply:
            assert reply.status == 403  # a sign-in posted from another site
        async with session.post(f"{base}/login", data={"user": "boss", "secret": "boss-secret-1", "next": "/board"},
                                allow_redirects=False) as reply:
            assert (reply.status, reply.headers["Location"]) == (303, "/board")
        status, page = await get(session, f"{base}/board")
        assert status == 200
        assert "live board" in page
        async with session.get(f"{base}/board/state") as reply:
            state = await reply.json()
        assert [a["kind"] for a in state["alarms"]] == ["feed_late"]
        assert {lv["level"] for lv in state["levels"]} >= {"gotone_vip", "ordinary_easyown"}

        # Redis stopped: not ready; back: ready again.
        port, data_dir = own_redis.port, own_redis.data_dir
        own_redis.stop()
        status, text = await get(session, f"{base}/readyz")
        assert status == 503
        assert "Redis unreachable" in text
        assert (await get(session, f"{base}/healthz"))[0] == 200  # alive all the same
        # Back on the same port; the fixture stops this one as its own.
        own_redis.process = RedisServer(data_dir, port=port).start().process
        async def ready() -> bool:
            return (await get(session, f"{base}/readyz"))[0] == 200

        await until(ready, "/readyz to answer 200 again", 10, every=0.2)


async def test_an_agent_cannot_open_the_board(served: Serve, own_redis: RedisServer, tmp_path: Path) -> None:
    roster = tmp_path / "agents.csv"
    roster.write_text("agent_id,name,interface,skills,tenure_start,satisfaction,first_contact_resolution\n"
                      "agent1,李娜,PJSIP/agent1,,2022-01-01,99%,95%\n", encoding="utf-8")
    assert cli(own_redis.url, "agents", "import", str(roster)).returncode == 0
    assert cli(own_redis.url, "agents", "secret", "agent1", "--secret", "agent-secret-1").returncode == 0
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        async with session.post(f"{served.base}/agent/login", data={"agent_id": "agent1", "secret": "agent-secret-1"},
                                allow_redirects=False) as reply:
            assert (reply.status, reply.headers["Location"]) == (303, "/agent")
        assert (await get(session, f"{served.base}/board"))[0] == 403
        assert (await get(session, f"{served.base}/board/events"))[0] == 403


async def test_counters_are_summed_across_workers(redis_server: RedisServer, records_url: str,
                                                  tmp_path: Path) -> None:
    serve = Serve(tmp_path, redis_server.url, records_url, workers=2)
    await serve.start()
    try:
        for i in range(20):
            await play("127.0.0.1", serve.agi_port, environment("entry", f"1390000001{i:02d}", f"1796000100.{i}"))
        async with aiohttp.ClientSession() as session:
            seen = set()
            for _ in range(6):  # the kernel hands each scrape to either worker
                samples = await scrape(session, serve.base)
                seen.add(samples['hotline_call_entries_total{level="ordinary_easyown",tier="normal"}'])
        assert seen == {20.0}
    finally:
        serve.stop()


async def test_separate_pages_count_the_call_path_and_die_with_their_parent(
        redis_server: RedisServer, records_url: str, tmp_path: Path) -> None:
    serve = Serve(tmp_path, redis_server.url, records_url, separate_pages=True)
    await serve.start()
    try:
        parent = serve.process.running_pid()
        assert parent is not None
        processes = children_of(parent)
        assert len(processes) == 2, "one for the pages, one for the call path"
        # Each port is held by one of them only.
        holders = {port: [pid for pid in processes if listens(pid, port)] for port in (serve.agi_port, serve.http_port)}
        assert len(holders[serve.agi_port]) == 1
        assert len(holders[serve.http_port]) == 1
        assert holders[serve.agi_port] != holders[serve.http_port]
        for i in range(12):
            result = await play("127.0.0.1", serve.agi_port, environment("entry", f"1390000002{i:02d}", f"1796000200.{i}"))
            assert result.variables()["HOTLINE_TIER"] == "normal"
        async with aiohttp.ClientSession() as session:
            samples = await scrape(session, serve.base)  # served by the pages process
        assert samples['hotline_call_entries_total{level="ordinary_easyown",tier="normal"}'] == 12.0
        os.kill(parent, signal.SIGKILL)  # the supervisor dies: no worker may keep the ports
        await until(lambda: not any(alive(pid) for pid in processes), "the workers to die with their parent", 5,
                    every=0.05)
        assert not tcp_listening(serve.agi_port)
        assert not tcp_listening(serve.http_port)
    finally:
        serve.stop()


def listens(pid: int, port: int) -> bool:
    """Whether process `pid` holds a listening TCP socket on `port` (from /proc, no probe)."""
    inodes = {line.split()[9] for line in Path("/proc/net/tcp").read_text().splitlines()[1:]
              if line.split()[3] == "0A" and int(line.split()[1].split(":")[1], 16) == port}
    fds = Path(f"/proc/{pid}/fd")
    return any(os.readlink(fd).removeprefix("socket:[").rstrip("]") in inodes for fd in fds.iterdir()
               if os.readlink(fd).startswith("socket:"))


async def test_slow_header_clients_are_cut_off_and_sign_in_still_answers(tmp_path: Path, redis_server: RedisServer,
                                                                         records_url: str) -> None:
    """200 clients dripping a request head a byte at a time: each is closed at the idle timeout
    (2 s here), while a real client's sign-in page answers at once."""
    serve = Serve(tmp_path, redis_server.url, records_url)
    serve.env["HOTLINE_HTTP_IDLE_TIMEOUT_S"] = "2"
    await serve.start()
    try:
        async def drip() -> float:
            reader, writer = await asyncio.open_connection("127.0.0.1", serve.http_port)
            began = time.monotonic()
            try:
                for byte in b"GET /login HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200:
                    writer.write(bytes([byte]))
                    await writer.drain()
                    await asyncio.sleep(0.2)
                    # A server cutting a half-sent request may reset rather than close it: then the
                    # reader holds an error, not EOF, and only the transport says it is gone.
                    if reader.at_eof() or writer.is_closing():
                        break
                await asyncio.wait_for(reader.read(), 5)
            except (ConnectionError, TimeoutError):
                pass
            finally:
                writer.close()
            return time.monotonic() - began

        dripping = [asyncio.create_task(drip()) for _ in range(200)]
        await asyncio.sleep(0.5)
        async with aiohttp.ClientSession() as session:
            started = time.monotonic()
            status, text = await get(session, f"{serve.base}/login")
            assert status == 200, text
            assert time.monotonic() - started < 1.0
        held = await asyncio.gather(*dripping)
        assert max(held) < 4.0, f"a slow client held its connection {max(held):.1f} s"
    finally:
        serve.stop()
