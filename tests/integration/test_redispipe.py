"""The call path's pipelined Redis client against a real redis-server."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest
from redis.asyncio import Redis

from harness.redis_server import RedisServer
from hotline_core.loops import handed
from hotline_core.redis_errors import PipeError, ReplyError
from hotline_core.redispipe import RedisPipe, Script
from tier_lookup.reader import TierReader


async def test_replies_come_back_to_their_own_callers(redis_server: RedisServer, redis: Redis) -> None:
    pipe = RedisPipe(redis_server.url, timeout_s=1.0)
    await asyncio.gather(*(pipe.execute("SET", f"k{i}", str(i)) for i in range(500)))
    values = await asyncio.gather(*(pipe.execute("GET", f"k{i}") for i in range(500)))
    assert values == [str(i) for i in range(500)]
    with pytest.raises(ReplyError, match=r"WRONGTYPE|wrong kind"):
        await asyncio.gather(pipe.execute("LPUSH", "k1", "x"))
    assert await pipe.execute("GET", "k2") == "2"  # an error reply does not shift the others
    await pipe.close()


async def test_a_lookup_works_on_a_redis_that_never_saw_the_script(redis_server: RedisServer, redis: Redis) -> None:
    await redis.hset("p:tables", "campus", "1|1|")
    await redis.hset("p:t:campus:1:0", "8613800000001", "")
    pipe = RedisPipe(redis_server.url, timeout_s=1.0)
    reader = TierReader(pipe, "p")

    async def lookup(number: str) -> object:
        replied, hand = handed()
        reader.lookup_then(number, hand)
        return await replied

    assert await lookup("8613800000001") == ["campus", "", ""]
    await redis.script_flush()  # as after a restart or a failover to a replica that never ran it
    assert await lookup("8613800000001") == ["campus", "", ""]
    assert await lookup("8613800000002") == []
    await pipe.close()


async def test_timeout_then_late_replies_are_not_misdelivered(own_redis: RedisServer) -> None:
    pipe = RedisPipe(own_redis.url, timeout_s=0.2)
    await pipe.execute("SET", "a", "1")
    await pipe.execute("SET", "b", "2")
    assert own_redis.process is not None
    os.kill(own_redis.process.pid, signal.SIGSTOP)
    try:
        with pytest.raises(TimeoutError):
            await pipe.execute("GET", "a")
    finally:
        os.kill(own_redis.process.pid, signal.SIGCONT)
    # The late reply to GET a arrives first and must be dropped, not handed to GET b.
    assert await pipe.execute("GET", "b") == "2"
    await pipe.close()


async def test_redis_down_fails_fast_and_reconnects_later(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "r")
    server.start()
    pipe = RedisPipe(server.url, timeout_s=0.3)
    assert await pipe.execute("PING") == "PONG"
    port = server.port
    server.stop()
    with pytest.raises((PipeError, TimeoutError)):
        await pipe.execute("PING")
    restarted = RedisServer(tmp_path / "r", port=port).start()
    try:
        assert await pipe.execute("PING") == "PONG"
    finally:
        restarted.stop()
        await pipe.close()


async def test_handlers_get_replies_and_failures_and_one_that_raises_spoils_nothing(
        redis_server: RedisServer, redis: Redis) -> None:
    pipe = RedisPipe(redis_server.url, timeout_s=1.0)
    await redis.set("h:text", "x")
    await pipe.execute("PING")  # connected: handlers are then called from the connection's reading
    got: list[object] = []

    def broken(reply: object) -> None:
        got.append(reply)
        raise RuntimeError("a bug in a handler")

    pipe.execute_then(broken, "GET", "h:text")
    pipe.execute_then(got.append, "LPUSH", "h:text", "y")  # a wrong-type error
    pipe.execute_then(got.append, "GET", "h:text")
    done, hand = handed()
    pipe.execute_then(hand, "PING")
    await done
    assert got[0] == "x"
    assert isinstance(got[1], ReplyError)
    assert got[2] == "x"  # the handlers after the broken one got their own replies
    await pipe.close()
    closed: list[object] = []
    pipe.execute_then(closed.append, "PING")  # closed: it reconnects in a task, then answers
    await asyncio.sleep(0.3)
    assert closed == ["PONG"]
    await pipe.close()


class _CountingTransport:
    """Records what the pipe writes, and writes it."""

    def __init__(self, transport: asyncio.Transport):
        self._transport = transport
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(data)
        self._transport.write(data)

    def __getattr__(self, name: str) -> object:
        return getattr(self._transport, name)


# A script that keeps Redis busy for 50 ms, so a command is surely in flight meanwhile.
_BUSY_50_MS = """local s = redis.call('TIME')
repeat local n = redis.call('TIME') until (n[1] - s[1]) * 1000000 + (n[2] - s[2]) > 50000
return 1"""


async def test_commands_wait_for_a_reply_in_flight_and_go_together(redis_server: RedisServer) -> None:
    pipe = RedisPipe(redis_server.url, timeout_s=2.0)
    await pipe.execute("PING")  # connected
    conn = pipe._conn
    assert conn is not None
    assert conn.transport is not None
    counting = _CountingTransport(conn.transport)
    conn.transport = counting  # type: ignore[assignment]
    busy = pipe.execute_nowait("EVAL", _BUSY_50_MS, "0")
    await asyncio.sleep(0)  # nothing was in flight: it goes at once, alone
    assert len(counting.writes) == 1
    first = pipe.execute_nowait("SET", "held1", "a")
    await asyncio.sleep(0)
    second = pipe.execute_nowait("SET", "held2", "b")
    await asyncio.sleep(0.01)  # several loop turns while the script runs
    assert len(counting.writes) == 1  # both held for its reply
    assert await asyncio.gather(busy, first, second) == [1, "OK", "OK"]
    assert len(counting.writes) == 2
    assert b"held1" in counting.writes[1]
    assert b"held2" in counting.writes[1]
    # Idle again: a lone command goes at once.
    lone = pipe.execute_nowait("GET", "held1")
    await asyncio.sleep(0)
    assert len(counting.writes) == 3
    assert await lone == "a"
    await pipe.close()


async def test_a_script_goes_by_its_sha_and_its_body_only_when_redis_lacks_it(
        redis_server: RedisServer, redis: Redis) -> None:
    pipe = RedisPipe(redis_server.url, timeout_s=2.0)
    script = Script("if ARGV[1] == 'bad' then return redis.error_reply('no good') end return ARGV[1] .. '!'")
    await redis.script_flush()
    assert await pipe.eval_nowait(script, "0", "a") == "a!"  # NOSCRIPT, then the body
    conn = pipe._conn
    assert conn is not None
    assert conn.transport is not None
    counting = _CountingTransport(conn.transport)
    conn.transport = counting  # type: ignore[assignment]
    assert await pipe.eval_nowait(script, "0", "b") == "b!"
    assert not any(script.body.encode() in write for write in counting.writes)
    with pytest.raises(ReplyError, match="no good"):  # the script's own error is its reply, not retried
        await pipe.eval_nowait(script, "0", "bad")
    assert len(counting.writes) == 2
    await redis.script_flush()  # as after a restart, or a failover to a replica that never ran it
    assert await pipe.eval_nowait(script, "0", "c") == "c!"
    assert any(script.body.encode() in write for write in counting.writes[2:])
    await pipe.close()
