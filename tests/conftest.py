"""Shared fixtures: a real redis-server per test session (Debian's package), flushed per test."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import uvloop
from redis.asyncio import Redis

from harness.compiled import stale_build
from harness.postgres_server import PostgresServer
from harness.redis_server import RedisServer
from hotline.app import migrate_records
from hotline_core.policy import Policy, load_policy
from hotline_core.redispipe import RedisPipe
from tier_lookup.store import TierStore
from tier_lookup.tables import RowContext

SHANGHAI_POLICY = load_policy()


def pytest_configure(config: pytest.Config) -> None:
    # Tests of stale compiled modules would pass or fail for code that is no longer there.
    why = stale_build(Path(__file__).resolve().parents[1])
    if why is not None:
        pytest.exit(why, returncode=4)


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> dict[str, Callable[[], object]]:
    # `hotline serve` runs on uvloop; so do the tests.
    return {"uvloop": uvloop.new_event_loop}


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of the test's own, for tests that stop or freeze it."""
    server = RedisServer(tmp_path / "redis").start()
    yield server
    if server.process is not None and server.process.poll() is None:
        os.kill(server.process.pid, signal.SIGCONT)  # a test that froze it may have failed midway
    server.stop()


@pytest.fixture
async def redis(redis_server: RedisServer) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_server.url, decode_responses=True)
    await client.flushdb()
    yield client
    await client.aclose()


@pytest.fixture
async def pipe(redis: Redis, redis_server: RedisServer) -> AsyncIterator[RedisPipe]:
    """The call path's pipelined client on the session's Redis (flushed by `redis`)."""
    client = RedisPipe(redis_server.url, timeout_s=1.0)
    yield client
    await client.close()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """Debian's PostgreSQL, one throwaway cluster per test session (under /tmp, which the
    postgres user can reach when the tests run as root)."""
    directory = Path(tempfile.mkdtemp(prefix="hotline-test-pg-"))
    directory.chmod(0o755)
    server = PostgresServer(directory / "cluster").start()
    yield server
    server.stop()
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
async def records_db(postgres_server: PostgresServer, request: pytest.FixtureRequest,
                     policy: Policy) -> AsyncIterator[tuple[str, asyncpg.Pool[Any]]]:
    """A migrated records database of this test's own, and a pool on it."""
    name = "t_" + hashlib.sha1(request.node.nodeid.encode()).hexdigest()[:16]
    postgres_server.psql(f'DROP DATABASE IF EXISTS "{name}"')
    url = postgres_server.create_database(name)
    conn = await asyncpg.connect(url)
    try:
        await migrate_records(conn, datetime.now(policy.zone).date())
    finally:
        await conn.close()
    pool = await asyncpg.create_pool(url, min_size=1, max_size=4)
    yield url, pool
    await pool.close()


@pytest.fixture
def policy() -> Policy:
    return SHANGHAI_POLICY


@pytest.fixture
def store(redis: Redis) -> TierStore:
    return TierStore(redis, "test")


def row_context(policy: Policy) -> RowContext:
    return RowContext.for_policy(policy)


def local(policy: Policy, text: str) -> datetime:
    """A wall-clock time in the operator's zone."""
    return datetime.fromisoformat(text).replace(tzinfo=policy.zone)


def write_csv(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path
