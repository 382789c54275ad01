"""End-to-end: real Asterisk (sid root), SIPp callers and agents, `hotline serve`, Redis.

Everything binds to loopback on ports chosen per run; every process is stopped by PID.
The Asterisk root is built by scripts/asterisk-root.sh if missing (about a minute, once).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, async_playwright

from ami_bridge.client import AmiClient
from asterisk_conf.render import AgentEndpoint, Deployment, level_queues
from harness.asterisk import Asterisk, default_root, ensure_root
from harness.devstack import DEMO_TABLES
from harness.kannel import Kannel
from harness.postgres_server import PostgresServer
from harness.procs import Managed, free_tcp_port, free_udp_port, tcp_listening, udp_bound
from harness.redis_server import RedisServer
from harness.sipp import CallResult, SippAgent, place_call
from harness.waiting import until_sync
from hotline_core.policy import DEFAULT_POLICY_FILE, load_policy

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "demo"
HOTLINE = str(Path(sys.executable).parent / "hotline")
AMI_USER, AMI_SECRET = "hotline", "e2e-secret"
METRICS_TOKEN = "e2e-metrics"
SUPERVISOR = ("boss", "boss-secret-1")
HANDLER = ("h1", "handler-secret-1")


# Debian's chromium, headless, with nothing that reaches beyond this machine.
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
                  "--disable-background-networking", "--disable-component-update"]


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_FLAGS)
        yield chromium
        await chromium.close()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


@dataclass
class Bridge:
    """`hotline serve` as a subprocess, so a test can take it down and bring it back."""

    port: int
    redis_url: str
    run_dir: Path

    def __post_init__(self) -> None:
        self.process = Managed("hotline serve", self.run_dir / "serve.pid", self.run_dir / "serve.log")
        # A copy of the shipped flows that a test may edit and reload.
        self.flows_dir = self.run_dir / "flows"
        shutil.copytree(ROOT / "ivr_flows" / "flows", self.flows_dir)

    ami_port: int = 0
    policy_file: Path | None = None
    frozen_time: str | None = None  # ISO date-time; pins call time and seasons
    kannel: Kannel | None = None
    http_port: int = field(default_factory=free_tcp_port)
    database_url: str = ""
    queue_log: Path | None = None
    source: str = "e2e"  # the queue_log's name in the call records (one per Asterisk)

    @property
    def env(self) -> dict[str, str]:
        env = {**os.environ, "HOTLINE_REDIS_URL": self.redis_url, "HOTLINE_AGI_PORT": str(self.port),
               "HOTLINE_LOG_FORMAT": "json", "HOTLINE_FLOWS_DIR": str(self.flows_dir),
               "HOTLINE_AMI_PORT": str(self.ami_port), "HOTLINE_AMI_SECRET": AMI_SECRET,
               "HOTLINE_AMI_KEEPALIVE_S": "1", "HOTLINE_DESK_RECONCILE_S": "2", "HOTLINE_METRICS_TOKEN": METRICS_TOKEN}
        if self.policy_file is not None:
            env["HOTLINE_POLICY_FILE"] = str(self.policy_file)
        if self.frozen_time is not None:
            env["HOTLINE_FROZEN_TIME"] = self.frozen_time
        env["HOTLINE_HTTP_PORT"] = str(self.http_port)
        if self.database_url:
            env["HOTLINE_DATABASE_URL"] = self.database_url
        if self.queue_log is not None:
            env.update({"HOTLINE_QUEUE_LOG_FILE": str(self.queue_log), "HOTLINE_QUEUE_LOG_SOURCE": self.source})
        if self.kannel is not None:
            env.update({"HOTLINE_SMS_GATEWAY_URL": self.kannel.sendsms_url, "HOTLINE_SMS_USERNAME": self.kannel.username,
                        "HOTLINE_SMS_PASSWORD": self.kannel.password, "HOTLINE_SMS_REPORT_TOKEN": "e2e-report"})
        return env

    def applied_since(self, mark: int) -> bool:
        """Whether the AMI bridge has applied queue membership since log line `mark`."""
        lines = self.process.log_file.read_text().splitlines()[mark:]
        return any('"event":"queue membership applied"' in line for line in lines)

    def log_mark(self) -> int:
        return len(self.process.log_file.read_text().splitlines()) if self.process.log_file.exists() else 0

    def log_lines(self, event: str) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.process.log_file.read_text().splitlines()
                if line.startswith("{") and f'"event":"{event}"' in line]

    def start(self) -> None:
        env = self.env
        proc = self.process.start([HOTLINE, "serve"], env=env)
        for _ in range(200):
            if tcp_listening(self.port):
                return
            if proc.poll() is not None:
                raise RuntimeError(f"hotline serve exited: {self.process.log_file.read_text()[-2000:]}")
            time.sleep(0.05)
        raise RuntimeError("hotline serve did not listen")

    def stop(self) -> None:
        self.process.stop()


@dataclass
class Events:
    """Every AMI event seen, with a way to wait for the one a test needs."""

    seen: list[dict[str, str]] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def __call__(self, event: dict[str, str]) -> None:
        self.seen.append(event)
        self.changed.set()

    def find(self, name: str, **match: str) -> list[dict[str, str]]:
        return [e for e in self.seen if e.get("Event") == name and all(e.get(k) == v for k, v in match.items())]

    async def wait(self, name: str, within: float = 20.0, **match: str) -> dict[str, str]:
        deadline = time.monotonic() + within
        while True:
            found = self.find(name, **match)
            if found:
                return found[0]
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                related = [(e.get("Event"), e.get("Queue"), e.get("Interface")) for e in self.seen
                           if e.get("Uniqueid") == match.get("Uniqueid") and e.get("Event", "").startswith(("Queue", "Agent"))]
                raise AssertionError(f"no {name} event matching {match} within {within} s; seen: {related}")
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), remaining)

    def variables(self, uniqueid: str) -> dict[str, str]:
        """Channel variables as Asterisk set them (VarSet events), last value wins."""
        out: dict[str, str] = {}
        for e in self.seen:
            if e.get("Event") == "VarSet" and e.get("Uniqueid") == uniqueid:
                out[e["Variable"]] = e.get("Value", "")
        return out

    def caller_channel(self, caller: str) -> dict[str, str]:
        for e in self.seen:
            if e.get("Event") == "Newchannel" and e.get("CallerIDNum") == caller and e.get("Exten") == "10086":
                return e
        raise AssertionError(f"no channel for caller {caller}")


@dataclass
class Stack:
    asterisk: Asterisk
    bridge: Bridge
    redis: RedisServer
    agents: list[SippAgent]
    sip_port: int
    kannel: Kannel
    postgres: PostgresServer

    async def call(self, caller: str, **kw: Any) -> CallResult:
        return await place_call(caller, self.sip_port, free_udp_port(), _media_port(), **kw)


def _media_port() -> int:
    """An even port whose next three are free too: SIPp binds the media port and the ones after
    it, and a taken one makes it exit before the call starts (a flaky "no channel for caller")."""
    for _ in range(200):
        port = 30000 + (free_udp_port() % 10000) // 4 * 4
        if not any(udp_bound(p) for p in range(port, port + 4)):
            return port
    raise AssertionError("no four free UDP ports for SIPp's media in 30000-39999")


def load_demo(redis_url: str) -> None:
    env = {**os.environ, "HOTLINE_REDIS_URL": redis_url}
    activated = time.strftime("%Y-%m-%d", time.localtime(time.time() - 3 * 86400))
    newsub = ROOT / ".run" / "e2e-newsub.csv"
    newsub.parent.mkdir(exist_ok=True)
    newsub.write_text(f"number,activated_at\n13800000002,{activated}\n")
    files = {t: DEMO / f"{t}.csv" for t in DEMO_TABLES}
    files["newsub"] = newsub
    for table, path in files.items():
        subprocess.run([HOTLINE, "tiers", "import", table, str(path), "--allow-shrink"], env=env, check=True,
                       capture_output=True)
    roster = ROOT / ".run" / "e2e-agents.csv"
    roster.write_text(ROSTER, encoding="utf-8")
    subprocess.run([HOTLINE, "agents", "import", str(roster)], env=env, check=True, capture_output=True)
    for agent in ("agent1", "agent2", "agent3"):
        subprocess.run([HOTLINE, "agents", "secret", agent, "--secret", f"{agent}-screen"], env=env, check=True,
                       capture_output=True)
    for (user, secret), role in ((SUPERVISOR, "supervisor"), (HANDLER, "handler")):
        subprocess.run([HOTLINE, "users", "add", user, "--role", role, "--secret", secret], env=env, check=True,
                       capture_output=True)


# Agents of the end-to-end roster: all qualified, best first, so the desks are dealt
# agent1 -> vip_desk, agent2 -> highend_desk, agent3 -> campus_desk (see e2e_policy).
ROSTER = """agent_id,name,interface,skills,tenure_start,satisfaction,first_contact_resolution
agent1,李娜,PJSIP/agent1,,2022-01-01,99%,95%
agent2,王芳,PJSIP/agent2,,2022-01-01,98%,94%
agent3,张伟,PJSIP/agent3,,2022-01-01,97%,93%
"""


def e2e_policy(run_dir: Path) -> Path:
    """The shipped policy with the campus desk dealt before the new-subscriber desk (three agents
    cover vip, highend and campus) and ordinary M-Zone callers released after 4 s in the queue."""
    text = DEFAULT_POLICY_FILE.read_text(encoding="utf-8")
    newsub = "  newsub_desk: {label: 新入网优先席, size: 3}\n"
    assert newsub in text
    text = text.replace(newsub, "").replace("  general: {label: 综合组, everyone: true}\n",
                                             newsub + "  general: {label: 综合组, everyone: true}\n")
    marker = "  - name: ordinary_mzone\n"
    head, tail = text.split(marker)
    tail = tail.replace("    max_wait_seconds: 120\n", "    max_wait_seconds: 4\n", 1)
    # No announcements for them here: app_queue checks the maximum wait only after one ends.
    tail = tail.replace("    announce: {position: true, holdtime: true, frequency_s: 90, periodic_s: 60}\n", "", 1)
    # Measurements from a handful of calls, and a first-contact window of 36 s: a test can call
    # back inside it and see the verdicts within a minute.
    measurement = "measurement:\n  fcr_window_hours: 72\n  months: 3\n  min_surveys: 30\n  min_fcr_calls: 50\n"
    assert measurement in tail
    tail = tail.replace(measurement, "measurement:\n  fcr_window_hours: 0.01\n  months: 3\n  min_surveys: 1\n"
                                     "  min_fcr_calls: 1\n")
    path = run_dir / "policy.yaml"
    path.write_text(head + marker + tail, encoding="utf-8")
    return path


def records_database(prefix: str) -> tuple[Path, PostgresServer]:
    """A PostgreSQL cluster of its own, migrated; in a directory the postgres user can reach."""
    pg_dir = Path(tempfile.mkdtemp(prefix=prefix))
    pg_dir.chmod(0o755)
    postgres = PostgresServer(pg_dir / "cluster").start()
    subprocess.run([HOTLINE, "db", "migrate"], env={**os.environ, "HOTLINE_DATABASE_URL": postgres.url()},
                   check=True, capture_output=True)
    return pg_dir, postgres


@contextmanager
def shared_stores(run_dir: Path, pg_prefix: str) -> Iterator[tuple[Path, RedisServer, PostgresServer]]:
    """What every end-to-end stack starts from: the sid root, Redis with the demo data and a
    migrated PostgreSQL of its own; stopped and removed afterwards."""
    root = ensure_root(default_root())
    redis = RedisServer(run_dir / "redis").start()
    try:
        load_demo(redis.url)
        pg_dir, postgres = records_database(pg_prefix)
        try:
            yield root, redis, postgres
        finally:
            postgres.remove()
            shutil.rmtree(pg_dir, ignore_errors=True)
    finally:
        redis.stop()


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    run_dir = tmp_path_factory.mktemp("stack")
    with shared_stores(run_dir, "hotline-e2e-pg-") as (root, redis, postgres), ExitStack() as started:
        yield from _stack(run_dir, root, redis, postgres, started)


def _stack(run_dir: Path, root: Path, redis: RedisServer, postgres: PostgresServer,
           started: ExitStack) -> Iterator[Stack]:
    policy = e2e_policy(run_dir)
    (run_dir / "kannel").mkdir()
    kannel = Kannel(run_dir / "kannel")
    bridge = Bridge(free_tcp_port(), redis.url, run_dir, ami_port=free_tcp_port(), policy_file=policy, kannel=kannel)
    agents = [SippAgent(f"agent{i}", free_udp_port(), _media_port(), run_dir) for i in (1, 2, 3)]
    registering = agents[2]
    sip_port = free_udp_port()
    deployment = Deployment(
        sip_port=sip_port, agi_port=bridge.port, ami_port=bridge.ami_port, ami_username=AMI_USER,
        ami_secret=AMI_SECRET, rtp_start=20000 + (sip_port % 50) * 100, rtp_end=20000 + (sip_port % 50) * 100 + 99,
        queue_timeout=30,
        # agent3's phone registers (production's way); the others are at fixed contacts.
        agents=tuple(AgentEndpoint(a.name, f"{a.name}-secret", "" if a is registering else a.contact)
                     for a in agents),
        level_queues=level_queues(load_policy(policy)),
    )
    asterisk = Asterisk(root, f"e2e-{os.getpid()}", deployment, run_dir)
    bridge.database_url, bridge.queue_log = postgres.url(), asterisk.queue_log
    # Each started process is stopped in reverse order, however far the start got.
    kannel.start()
    started.callback(kannel.stop)
    for agent in agents[:2]:
        agent.start()
        started.callback(agent.stop)
    asterisk.start()
    started.callback(asterisk.stop, remove_files=True)
    registering.register(sip_port, f"{registering.name}-secret")
    registering.start()
    started.callback(registering.stop)
    bridge.start()
    started.callback(bridge.stop)
    until_sync(lambda: bridge.applied_since(0), "the AMI bridge to staff the level queues", 20)
    yield Stack(asterisk, bridge, redis, agents, sip_port, kannel, postgres)


def reregister(stack: Stack) -> None:
    """agent3's phone registers again, as a real phone does within its re-registration interval
    after Asterisk restarts (a restarted Asterisk here starts with no registrations)."""
    phone = stack.agents[2]
    phone.stop()
    phone.register(stack.sip_port, f"{phone.name}-secret")
    phone.start()


@pytest.fixture
async def ami(stack: Stack) -> AsyncIterator[tuple[AmiClient, Events]]:
    client = AmiClient("127.0.0.1", stack.asterisk.deployment.ami_port, AMI_USER, AMI_SECRET)
    events = Events()
    client.subscribe(events)
    await client.connect()
    yield client, events
    await client.close()


async def pause_all(client: AmiClient, paused: bool, agents: tuple[str, ...] = ("agent1", "agent2", "agent3")) -> None:
    """Pause (or unpause) agents in every queue at once."""
    for agent in agents:
        reply = await client.action({"Action": "QueuePause", "Interface": f"PJSIP/{agent}",
                                     "Paused": "true" if paused else "false"})
        assert reply.get("Response") == "Success", reply
