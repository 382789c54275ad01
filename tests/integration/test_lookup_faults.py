"""Redis slow or down: the lookup answers `normal`, degraded, within its budget, and says so in the log."""

from __future__ import annotations

import os
import signal
import time

from redis.asyncio import Redis
from structlog.testing import capture_logs

from harness.procs import free_tcp_port
from harness.redis_server import RedisServer
from hotline_core.policy import Policy
from hotline_core.redispipe import RedisPipe
from tests.conftest import local
from tier_lookup.reader import TierReader
from tier_lookup.service import TierLookup

AT = "2026-11-10T10:00"


async def test_redis_down_gives_normal_degraded_quickly(policy: Policy) -> None:
    pipe = RedisPipe(f"redis://127.0.0.1:{free_tcp_port()}/0", timeout_s=0.2)
    lookup = TierLookup(TierReader(pipe, "t"), policy, budget_s=0.2)
    started = time.perf_counter()
    with capture_logs() as logs:
        identity = await lookup.identify("13800000001", local(policy, AT))
    elapsed = time.perf_counter() - started
    await pipe.close()
    assert (identity.tier, identity.degraded, identity.number) == ("normal", True, "8613800000001")
    assert identity.level == "ordinary_easyown"
    assert elapsed < 0.5
    assert any(entry["log_level"] == "warning" and "failed" in entry["event"] for entry in logs), logs


async def test_redis_hung_gives_normal_degraded_within_budget(own_redis: RedisServer, policy: Policy) -> None:
    client = Redis.from_url(own_redis.url, decode_responses=True)
    await client.hset("t:tables", "highend", "1|1|")
    await client.hset("t:t:highend:1:0", "8613800000001", "")
    pipe = RedisPipe(own_redis.url, timeout_s=0.2)
    lookup = TierLookup(TierReader(pipe, "t"), policy, budget_s=0.2)
    assert (await lookup.identify("13800000001", local(policy, AT))).tier == "highend"
    assert own_redis.process is not None
    os.kill(own_redis.process.pid, signal.SIGSTOP)
    try:
        started = time.perf_counter()
        with capture_logs() as logs:
            identity = await lookup.identify("13800000001", local(policy, AT))
        elapsed = time.perf_counter() - started
    finally:
        os.kill(own_redis.process.pid, signal.SIGCONT)
    assert (identity.tier, identity.degraded) == ("normal", True)
    assert 0.15 < elapsed < 0.25
    assert any("timed out" in entry["event"] and entry["budget_ms"] == 200 for entry in logs), logs
    # Once Redis is back, the next call is served from the tables again.
    recovered = await lookup.identify("13800000001", local(policy, AT))
    assert (recovered.tier, recovered.degraded) == ("highend", False)
    await client.aclose()
    await pipe.close()
