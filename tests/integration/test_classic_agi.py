"""`hotline-agi`, the process-per-call script, driven over stdin/stdout as Asterisk drives it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from redis.asyncio import Redis

from agi.variables import CONTRACT
from harness.agi_peer import PeerResult, environment
from harness.procs import free_tcp_port
from harness.redis_server import RedisServer
from tests.conftest import row_context
from tier_lookup.importer import ImportOptions, import_table
from tier_lookup.store import TierStore

SCRIPT = str(Path(sys.executable).parent / "hotline-agi")


def drive(redis_url: str, env: bytes, *args: str) -> tuple[PeerResult, str]:
    environ = {**os.environ, "HOTLINE_REDIS_URL": redis_url, "HOTLINE_REDIS_PREFIX": "classic"}
    proc = subprocess.Popen([SCRIPT, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=environ)
    assert proc.stdin is not None
    assert proc.stdout is not None
    assert proc.stderr is not None
    proc.stdin.write(env)
    proc.stdin.flush()
    result = PeerResult()
    while line := proc.stdout.readline():
        result.commands.append(line.rstrip(b"\n"))
        proc.stdin.write(b"200 result=1\n")
        proc.stdin.flush()
    result.closed_by_server = True
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=30) == 0, stderr
    return result, stderr


async def test_classic_agi_sets_the_same_variables(redis_server: RedisServer, redis: Redis, policy: object) -> None:
    store = TierStore(redis, "classic")
    data = "number,name\n13800000004,王\n".encode()
    assert (await import_table(store, "rural", data, "rural", row_context(policy), ImportOptions())).ok  # type: ignore[arg-type]
    env = environment("", "13800000004", "1732262400.3", {"agi_request": "hotline-agi", "agi_network": "no",
                                                           "agi_calleridname": b"\xff".decode("utf-8", "surrogateescape")})
    result, stderr = drive(redis_server.url, env, "1732262400.2")
    variables = result.variables()
    assert list(variables) == list(CONTRACT)
    assert variables["HOTLINE_TIER"] == "rural"
    assert variables["HOTLINE_GREETING"] == "尊敬的王站长,你好,有什么可以帮到您"
    assert "13800000004" not in stderr  # Asterisk logs this stream: numbers masked
    assert '"call entry"' in stderr
    assert await redis.exists("classic:call:1732262400.3")
    assert await redis.get("classic:call:linked:1732262400.2") == "1732262400.3"


def test_classic_agi_with_redis_down_still_answers(tmp_path: Path) -> None:
    env = environment("", "13800000004", "1.7", {"agi_request": "hotline-agi"})
    result, _ = drive(f"redis://127.0.0.1:{free_tcp_port()}/0", env)
    variables = result.variables()
    assert (variables["HOTLINE_TIER"], variables["HOTLINE_DEGRADED"]) == ("normal", "1")
