"""The FastAGI server on an ephemeral port, driven by a scripted Asterisk peer, with real Redis."""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime

import pytest
import structlog
from redis.asyncio import Redis
from structlog.testing import capture_logs

from agi.records import CallRecords
from agi.server import FastAgiServer
from agi.variables import CONTRACT
from harness.agi_peer import always_ok, environment, play
from harness.procs import free_tcp_port
from harness.redis_server import RedisServer
from harness.waiting import until
from hotline.app import Services, build_agi_server, flow_registry, open_services
from hotline_core.logs import configure_logging
from hotline_core.policy import Policy
from hotline_core.settings import Settings
from tests.conftest import row_context
from tier_lookup.importer import ImportOptions, import_table


@dataclass
class Agi:
    host: str
    port: int
    server: FastAgiServer
    services: Services


async def start(settings: Settings) -> AsyncIterator[Agi]:
    async with open_services(settings) as services:
        server = build_agi_server(services, flow_registry(settings))
        host, port = await server.start("127.0.0.1", 0)
        try:
            yield Agi(host, port, server, services)
        finally:
            await server.stop()


@pytest.fixture
async def agi(redis_server: RedisServer, redis: Redis, policy: Policy) -> AsyncIterator[Agi]:
    tables = {
        "highend": "number,arpu\n13800000001,428\n",
        "newsub": "number,activated_at\n13800000002,2026-11-01\n",
        "campus": "number\n13800000003\n",
        "rural": "number,name\n13800000004,王\n",
        "brand": "number,brand\n13800000001,easyown\n13800000002,mzone\n13800000003,mzone\n13800000004,easyown\n"
                 "13800000005,gotone\n13800000007,mzone\n",
        "blacklist": "number\n13800000007\n",
    }
    settings = Settings(redis_url=redis_server.url, redis_prefix="agitest", agi_port=0, agi_idle_timeout_s=0.5)
    async with open_services(settings) as services:
        for table, text in tables.items():
            report = await import_table(services.store, table, text.encode(), table, row_context(policy), ImportOptions())
            assert report.ok, report.summary()
    async for running in start(settings):
        yield running


async def call(agi: Agi, caller: str, uniqueid: str = "1732262400.1", **kw: object) -> dict[str, str]:
    result = await play(agi.host, agi.port, environment("entry", caller, uniqueid), **kw)  # type: ignore[arg-type]
    assert result.closed_by_server
    return result.variables()


@pytest.mark.parametrize(
    ("caller", "expected"),
    [
        ("13800000001", {"HOTLINE_TIER": "highend", "HOTLINE_TIER_LABEL": "中高端", "HOTLINE_BRAND": "easyown",
                         "HOTLINE_LEVEL": "highend_easyown", "QUEUE_PRIO": "60",
                         "HOTLINE_SKILL_CHAIN": "highend_desk,general", "HOTLINE_GREETING": ""}),
        ("13800000003", {"HOTLINE_TIER": "campus", "HOTLINE_LEVEL": "campus", "QUEUE_PRIO": "30"}),
        ("+8613800000004", {"HOTLINE_TIER": "rural", "HOTLINE_TIER_LABEL": "农村", "QUEUE_PRIO": "10",
                            "HOTLINE_GREETING": "尊敬的王站长,你好,有什么可以帮到您"}),
        ("13800000005", {"HOTLINE_TIER": "normal", "HOTLINE_BRAND": "gotone", "HOTLINE_LEVEL": "gotone_vip",
                         "QUEUE_PRIO": "70", "HOTLINE_SKILL_CHAIN": "vip_desk,highend_desk,general"}),
        ("13800000007", {"HOTLINE_TIER": "normal", "HOTLINE_FLAGS": "blacklist", "QUEUE_PRIO": "20"}),
        ("13900000000", {"HOTLINE_TIER": "normal", "HOTLINE_BRAND": "unknown", "QUEUE_PRIO": "10"}),
        ("anonymous", {"HOTLINE_TIER": "normal", "HOTLINE_DEGRADED": "0"}),
    ],
)
async def test_variables_for_each_tier(agi: Agi, caller: str, expected: dict[str, str]) -> None:
    variables = await call(agi, caller)
    assert list(variables) == list(CONTRACT)
    assert {k: variables[k] for k in expected} == expected
    assert variables["HOTLINE_DEGRADED"] == "0"


async def test_newsub_is_new_within_its_window(agi: Agi, policy: Policy) -> None:
    # The demo activation is 2026-11-01; whether it is still new depends on today's date in the
    # operator's time zone (the window is counted in local days), not the test machine's.
    before = datetime.now(policy.zone).strftime("%Y-%m-%d")
    variables = await call(agi, "13800000002")
    after = datetime.now(policy.zone).strftime("%Y-%m-%d")
    if before == after:  # not run across local midnight
        assert variables["HOTLINE_TIER"] == ("newsub" if after < "2026-12-01" else "normal")


async def test_call_record_written_with_ttl_and_linkedid(agi: Agi, redis: Redis) -> None:
    env = environment("entry", "13800000004", "1732262400.9", {"agi_arg_1": "1732262400.8"})
    await play(agi.host, agi.port, env)
    records = CallRecords(agi.services.pipe, "agitest", 60)
    record = await records.by_linkedid("1732262400.8")
    assert record is not None
    assert record.uniqueid == "1732262400.9"
    assert record.identity["tier"] == "rural"
    assert record.channel == "PJSIP/caller-1732262400.9"
    assert 0 < await redis.ttl("agitest:call:1732262400.9") <= 86_400


async def test_one_canonical_log_line_with_masked_caller(agi: Agi) -> None:
    with capture_logs() as logs:
        await call(agi, "13800000001", uniqueid="1732262400.5")
    entries = [e for e in logs if e["event"] == "call entry"]
    assert len(entries) == 1
    entry = entries[0]
    assert (entry["tier"], entry["access_level"], entry["degraded"]) == ("highend", "highend_easyown", False)
    assert entry["uniqueid"] == "1732262400.5"
    assert entry["latency_ms"] > 0
    assert entry["caller"] == "13800000001"  # masked by the log processor, see test_cli


async def test_trying_before_the_result(agi: Agi) -> None:
    variables = await call(agi, "13800000001", answer=lambda i, c: b"100 result=0 Trying...\n200 result=1\n")
    assert variables["HOTLINE_TIER"] == "highend"


async def test_one_round_trip_sets_every_variable(agi: Agi) -> None:
    result = await play(agi.host, agi.port, environment("entry", "13800000004", "1.0"))
    assert len(result.commands) == 1
    assert result.commands[0].startswith(b'EXEC "MSet" ')


async def test_usage_error_on_mset_falls_back_to_one_command_each(agi: Agi) -> None:
    def answer(index: int, command: bytes) -> bytes:
        if index == 0:
            return b"520-Invalid command syntax.  Proper usage follows:\n Usage: EXEC\n520 End of proper usage.\n"
        if index == 3:
            return b"520-Invalid command syntax.  Proper usage follows:\n Usage: SET VARIABLE\n520 End of proper usage.\n"
        return b"200 result=1\n"

    with capture_logs() as logs:
        result = await play(agi.host, agi.port, environment("entry", "13800000004", "1.0"), answer)
    assert len(result.commands) == 1 + len(CONTRACT)
    assert all(c.startswith(b"SET VARIABLE") for c in result.commands[1:])
    assert result.variables()["HOTLINE_GREETING"] == "尊敬的王站长,你好,有什么可以帮到您"
    refusals = [e for e in logs if e["event"] == "asterisk refused a command"]
    assert [e["code"] for e in refusals] == [520, 520]
    assert any(e["event"] == "call entry" and e["failed_commands"] == 1 for e in logs)


async def test_missing_mset_application_falls_back(agi: Agi) -> None:
    result = await play(agi.host, agi.port, environment("entry", "13800000001", "1.0"),
                        lambda i, c: b"200 result=-2\n" if i == 0 else b"200 result=1\n")
    assert len(result.commands) == 1 + len(CONTRACT)
    assert result.variables()["HOTLINE_TIER"] == "highend"


async def test_hangup_during_the_exchange(agi: Agi) -> None:
    with capture_logs() as logs:
        result = await play(agi.host, agi.port, environment("entry", "13800000001", "1.1"),
                            lambda i, c: b"HANGUP\n200 result=0\n")
    assert len(result.commands) == 1
    assert any(e["event"] == "call entry" and e["hung_up"] for e in logs), logs


async def test_dead_channel_stops_the_exchange(agi: Agi) -> None:
    with capture_logs() as logs:
        result = await play(agi.host, agi.port, environment("entry", "13800000001", "1.1"),
                            lambda i, c: b"HANGUP\n511 Command Not Permitted on a dead channel or intercept routine\n")
    assert len(result.commands) == 1
    assert any(e["event"] == "fastagi peer went away" and "511" in e["reason"] for e in logs), logs


async def test_peer_closing_mid_environment(agi: Agi) -> None:
    with capture_logs() as logs:
        _, writer = await asyncio.open_connection(agi.host, agi.port)
        writer.write(environment("entry", "13800000001", "1.2")[:40])
        await writer.drain()
        writer.close()
        await asyncio.sleep(0.1)
    assert any(e["event"] == "fastagi peer went away" and "environment" in e["reason"] for e in logs), logs
    assert (await call(agi, "13800000001"))["HOTLINE_TIER"] == "highend"


async def test_idle_peer_is_dropped_after_the_timeout(agi: Agi) -> None:
    with capture_logs() as logs:
        reader, writer = await asyncio.open_connection(agi.host, agi.port)
        started = time.perf_counter()
        assert await asyncio.wait_for(reader.read(), 3) == b""
        elapsed = time.perf_counter() - started
        writer.close()
    assert 0.4 < elapsed < 1.5
    assert any(e["event"] == "fastagi peer idle; closing" for e in logs), logs


async def test_environment_lines_without_separator(agi: Agi) -> None:
    env = b"this is not a header\nagi_bogus:nospace\n" + environment("entry", "13800000001", "1.3")
    with capture_logs() as logs:
        result = await play(agi.host, agi.port, env)
    assert result.variables()["HOTLINE_TIER"] == "highend"
    assert any(e["event"].startswith("fastagi environment lines without") and e["count"] == 2 for e in logs)


async def test_one_megabyte_line_is_refused(agi: Agi) -> None:
    with capture_logs() as logs:
        reader, writer = await asyncio.open_connection(agi.host, agi.port)
        try:
            writer.write(b"agi_callerid: " + b"9" * 1_000_000 + b"\n\n")
            await writer.drain()
            # The server closes with our bytes unread, so the kernel may answer with a reset.
            assert await asyncio.wait_for(reader.read(), 3) == b""
        except ConnectionResetError:
            pass
        writer.close()
    assert any(e["event"] == "fastagi peer broke the protocol; closing" and "line longer" in e["error"] for e in logs)
    assert agi.server.active == 0


async def test_non_utf8_caller_name(agi: Agi) -> None:
    env = environment("entry", "13800000004", "1.4", {"agi_calleridname": b"\xff\xfe\xc3".decode("utf-8", "surrogateescape")})
    assert b"\xff\xfe\xc3" in env
    result = await play(agi.host, agi.port, env)
    assert result.variables()["HOTLINE_TIER"] == "rural"


async def test_unknown_route(agi: Agi) -> None:
    with capture_logs() as logs:
        result = await play(agi.host, agi.port, environment("nosuch", "13800000001", "1.5"))
    assert result.commands == []
    assert any(e["event"] == "fastagi request for an unknown route" and e["route"] == "nosuch" for e in logs)


async def test_ten_thousand_connections_opened_and_dropped(agi: Agi) -> None:
    async def flap() -> None:
        try:
            _, writer = await asyncio.open_connection(agi.host, agi.port)
            writer.close()
        except OSError:
            pass

    with capture_logs():
        for _ in range(100):
            await asyncio.gather(*(flap() for _ in range(100)))
        await until(lambda: agi.server.active == 0, "every flapping session to be closed", 5, every=0.05)
    # A connection closed before the loop accepts it may never reach the handler; most do.
    assert agi.server.handled >= 9_000
    variables = await call(agi, "13800000001")
    assert variables["HOTLINE_TIER"] == "highend"


async def test_redis_down_still_sets_normal_degraded_within_budget(policy: Policy) -> None:
    settings = Settings(redis_url=f"redis://127.0.0.1:{free_tcp_port()}/0", agi_port=0, lookup_budget_ms=200)
    async for agi in start(settings):
        started = time.perf_counter()
        with capture_logs() as logs:
            result = await play(agi.host, agi.port, environment("entry", "13800000001", "1.6"), always_ok)
        elapsed = time.perf_counter() - started
        variables = result.variables()
        assert (variables["HOTLINE_TIER"], variables["HOTLINE_DEGRADED"], variables["QUEUE_PRIO"]) == ("normal", "1", "10")
        assert elapsed < 0.5
        assert any(e["event"] == "call record not saved" for e in logs)
        assert any(e["event"] == "call entry" and e["degraded"] for e in logs)


async def _served(**kw: float | int) -> tuple[FastAgiServer, int, list[str]]:
    seen: list[str] = []

    async def route(session: object, env: object) -> None:
        seen.append("entered")

    server = FastAgiServer({"entry": route}, idle_timeout=10.0, **kw)  # type: ignore[arg-type]
    _host, port = await server.start("127.0.0.1", 0)
    return server, port, seen


async def _closed_within(reader: asyncio.StreamReader, seconds: float) -> bool:
    try:
        async with asyncio.timeout(seconds):
            return await reader.read() == b""
    except TimeoutError:
        return False


async def test_a_peer_dripping_its_environment_loses_its_slot_at_the_deadline() -> None:
    server, port, seen = await _served(environment_deadline=1.0)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        started = time.monotonic()
        for byte in environment("entry", "13800000001", "1.1")[:6]:  # a byte every 0.3 s: never idle
            writer.write(bytes([byte]))
            await writer.drain()
            if await _closed_within(reader, 0.3):
                break
        assert 0.9 < time.monotonic() - started < 2.5  # cut at the deadline, not after the idle timeout
        assert server.active == 0
        assert seen == []
        writer.close()
    finally:
        await server.stop()


async def test_an_environment_far_larger_than_asterisks_is_refused() -> None:
    server, port, seen = await _served()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"".join(f"agi_x{i}: {'y' * 200}\n".encode() for i in range(200)))  # 40 KB, in bounds per line
        await writer.drain()
        assert await _closed_within(reader, 2.0)
        assert seen == []
        writer.close()
    finally:
        await server.stop()


async def test_one_address_holds_only_its_share_of_the_slots() -> None:
    server, port, seen = await _served(max_per_peer=5)
    hostile = []
    try:
        for _ in range(6):
            hostile.append(await asyncio.open_connection("127.0.0.1", port, local_addr=("127.0.0.2", 0)))
        await asyncio.sleep(0.2)
        assert server.active == 5
        assert await _closed_within(hostile[-1][0], 1.0)  # the sixth from that address: refused
        result = await play("127.0.0.1", port, environment("entry", "13800000001", "1.2"))  # Asterisk's own
        assert result.closed_by_server
        assert seen == ["entered"]
    finally:
        for _reader, writer in hostile:
            writer.close()
        await server.stop()


async def test_each_call_logs_under_its_own_uniqueid_when_replies_come_together(agi: Agi) -> None:
    stream = io.StringIO()
    configure_logging("info", "json", stream)
    uniqueids = [f"1732262400.{200 + i}" for i in range(12)]
    try:
        # Every MSet refused: each call says so in a line of its own, which names no call itself
        # (the call's fields come from its context), then sets its variables one by one.
        await asyncio.gather(*(play(agi.host, agi.port, environment("entry", f"1380000000{i % 7 + 1}", uniqueid),
                                    lambda i, c: b"510 Invalid or unknown command\n" if i == 0 else b"200 result=1\n")
                               for i, uniqueid in enumerate(uniqueids)))
        await asyncio.sleep(0.2)  # the log's batch goes out
    finally:
        structlog.reset_defaults()
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    refusals = sorted(line["uniqueid"] for line in lines if line["event"] == "asterisk refused a command")
    assert refusals == sorted(uniqueids)
    entries = {line["uniqueid"]: line for line in lines if line["event"] == "call entry"}
    assert sorted(entries) == sorted(uniqueids)
    assert len({line["peer"] for line in entries.values()}) == len(uniqueids)  # each its own connection
