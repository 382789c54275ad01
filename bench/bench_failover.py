"""What the loss of one box costs callers: the production topology as processes on loopback.

Two Asterisk servers (chroot, their own system names), two `hotline serve` (each bridging its
Asterisk over AMI, reading its queue_log into one PostgreSQL) reached by SRV records from a
real dnsmasq, Redis with a replica and three sentinels, three SIPp agents. SIPp callers arrive
steadily (one every 0.25 s, alternating between the Asterisk servers that answer SIP, as an
SBC's health check would route them), each entering the IVR for two seconds. Four faults, one
after the other: `hotline serve` A killed (SIGKILL, back after 5 s), the Redis primary killed
(SIGKILL; a sentinel promotes the replica), Asterisk A taken out of service (`core stop
gracefully`: new calls refused with 503, which the SBC sends to B; calls in progress end first;
back after 5 s) and Asterisk A crashed (SIGKILL, back after 5 s). For each, over
the 10 s from the fault: calls offered, served normally (their entry exact), degraded (served
as `normal`: no tier lookup possible, or the AGI failed and the dialplan's fallback served
them), failed (the caller got no answer), and the longest gap between two entries.

    .venv/bin/python -m bench.bench_failover
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path

from harness.asterisk import Asterisk, default_root, ensure_root, srv_deployment
from harness.dns_server import DnsServer, Srv
from harness.postgres_server import PostgresServer
from harness.procs import Managed, free_tcp_port, free_udp_port, tcp_listening, udp_bound
from harness.redis_sentinel import SERVICE, Sentinels
from harness.sipp import SippAgent, place_call

HOTLINE = str(Path(sys.executable).parent / "hotline")
ROOT = Path(__file__).resolve().parents[1]
NAME = "agi.failover.test"
AMI_SECRET = "failover-secret"
WINDOW_S = 10.0


@dataclass
class Serve:
    label: str
    env: dict[str, str]
    run_dir: Path
    agi_port: int = field(default_factory=free_tcp_port)

    def __post_init__(self) -> None:
        self.env = {**self.env, "HOTLINE_AGI_PORT": str(self.agi_port), "HOTLINE_HTTP_PORT": str(free_tcp_port())}
        self.process = Managed(f"hotline serve {self.label}", self.run_dir / f"serve-{self.label}.pid",
                               self.run_dir / f"serve-{self.label}.log")

    def start(self) -> None:
        self.process.start([HOTLINE, "serve"], env=self.env)
        deadline = time.monotonic() + 20
        while not tcp_listening(self.agi_port):
            if time.monotonic() > deadline:
                raise SystemExit(self.process.log_file.read_text()[-2000:])
            time.sleep(0.05)

    def kill(self) -> None:
        pid = self.process.running_pid()
        if pid:
            os.kill(pid, 9)

    def entries(self) -> list[tuple[float, bool]]:
        """(epoch seconds, degraded) of every call entry this instance logged."""
        out = []
        for line in self.process.log_file.read_text().splitlines():
            if line.startswith("{") and '"event":"call entry"' in line:
                event = json.loads(line)
                out.append((datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00")).timestamp(),
                            bool(event["degraded"])))
        return out


@dataclass
class Call:
    at: float
    server: str
    returncode: int = -1
    ended: float = 0.0
    output: str = ""
    rerouted: bool = False  # refused with 503 and placed again on the other server


def main() -> int:
    root = ensure_root(default_root())
    with tempfile.TemporaryDirectory(prefix="hotline-bench-failover-") as tmp:
        run_dir = Path(tmp)
        sentinels = Sentinels(run_dir / "redis").start()
        pg_dir = Path(tempfile.mkdtemp(prefix="hotline-failover-pg-"))
        pg_dir.chmod(0o755)
        postgres = PostgresServer(pg_dir / "cluster").start()
        base_env = {**os.environ, "HOTLINE_REDIS_URL": "redis://127.0.0.1:1/0",
                    "HOTLINE_REDIS_SENTINELS": sentinels.setting, "HOTLINE_REDIS_SERVICE": SERVICE,
                    "HOTLINE_REDIS_WAIT_REPLICAS": "1", "HOTLINE_DATABASE_URL": postgres.url(),
                    "HOTLINE_LOG_FORMAT": "json", "HOTLINE_AMI_SECRET": AMI_SECRET, "HOTLINE_AMI_KEEPALIVE_S": "1"}
        for command in (["db", "migrate"], ["tiers", "import", "highend", str(ROOT / "demo" / "highend.csv")],
                        ["agents", "import", str(ROOT / "demo" / "agents.csv")]):
            subprocess.run([HOTLINE, *command], env=base_env, check=True, capture_output=True)
        agents = [SippAgent(f"agent{i}", free_udp_port(), 47000 + 4 * i, run_dir) for i in (1, 2, 3, 4)]
        serves: dict[str, Serve] = {}
        asterisks: dict[str, Asterisk] = {}
        sip_ports: dict[str, int] = {}
        for side in ("a", "b"):
            ami_port, sip_port = free_tcp_port(), free_udp_port()
            deployment = srv_deployment(sip_port, ami_port, AMI_SECRET, NAME, f"asterisk-{side}", agents, 23000)
            asterisks[side] = Asterisk(root, f"failover-{side}-{os.getpid()}", deployment, run_dir)
            serves[side] = Serve(side, {**base_env, "HOTLINE_AMI_PORT": str(ami_port),
                                        "HOTLINE_QUEUE_LOG_FILE": str(asterisks[side].queue_log),
                                        "HOTLINE_QUEUE_LOG_SOURCE": f"asterisk-{side}"}, run_dir)
            sip_ports[side] = sip_port
        dns = DnsServer(NAME, [Srv("127.0.0.1", serves[s].agi_port, 0, 50) for s in ("a", "b")], run_dir, root)
        started: list[object] = []
        try:
            dns.start()
            started.append(dns.stop)
            for agent in agents:
                agent.start()
                started.append(agent.stop)
            for side in ("a", "b"):
                asterisks[side].start()
                started.append(lambda side=side: asterisks[side].stop(remove_files=True))
                serves[side].start()
                started.append(serves[side].process.stop)
            time.sleep(3)
            calls, faults = asyncio.run(run_faults(serves, asterisks, sentinels, sip_ports))
            report(calls, faults, serves)
        finally:
            for stop in reversed(started):
                stop()  # type: ignore[operator]
            sentinels.stop()
            postgres.remove()
            shutil.rmtree(pg_dir, ignore_errors=True)
    return 0


async def run_faults(serves: dict[str, Serve], asterisks: dict[str, Asterisk], sentinels: Sentinels,
                     sip_ports: dict[str, int]) -> tuple[list[Call], list[tuple[str, float]]]:
    """Every call placed, and each fault's name and moment (epoch seconds)."""
    calls: list[Call] = []
    faults: list[tuple[str, float]] = []
    tasks: list[asyncio.Task[None]] = []
    stop = asyncio.Event()

    async def one(call: Call, media: int) -> None:
        caller = f"138000000{len(calls) % 10:02d}"
        result = await place_call(caller, sip_ports[call.server], free_udp_port(), media, wait_ms=1800, talk_ms=200,
                                  limit_s=30)
        if result.returncode != 0 and "SIP/2.0 503" in result.output:
            # What an SBC does with a 503 (a server going out of service): the next server.
            call.rerouted = True
            other = "b" if call.server == "a" else "a"
            result = await place_call(caller, sip_ports[other], free_udp_port(), media, wait_ms=1800, talk_ms=200,
                                      limit_s=30)
        call.returncode, call.ended, call.output = result.returncode, time.time(), result.output

    async def generate() -> None:
        index = 0
        while not stop.is_set():
            live = [s for s in ("a", "b") if udp_bound(sip_ports[s])]  # the SBC's health check
            server = live[index % len(live)] if live else "a"
            call = Call(time.time(), server)
            calls.append(call)
            tasks.append(asyncio.create_task(one(call, 48000 + 4 * (index % 400))))
            index += 1
            await asyncio.sleep(0.25)

    generator = asyncio.create_task(generate())
    loop = asyncio.get_running_loop()
    await asyncio.sleep(5)
    faults.append(("hotline serve A killed (kill -9), back after 5 s", time.time()))
    serves["a"].kill()
    await asyncio.sleep(5)
    await loop.run_in_executor(None, serves["a"].start)
    await asyncio.sleep(WINDOW_S)
    faults.append(("Redis primary killed (kill -9), a sentinel promotes the replica", time.time()))
    await loop.run_in_executor(None, sentinels.kill_primary)
    await asyncio.sleep(WINDOW_S + 5)
    faults.append(("Asterisk A taken out of service (core stop gracefully), back 5 s after it stopped",
                   time.time()))
    await loop.run_in_executor(None, partial(asterisks["a"].stop, 30.0, gracefully=True))
    await asyncio.sleep(5)
    await loop.run_in_executor(None, asterisks["a"].start)
    await asyncio.sleep(WINDOW_S + 5)
    faults.append(("Asterisk A crashed (kill -9), back after 5 s", time.time()))
    await loop.run_in_executor(None, asterisks["a"].kill)
    await asyncio.sleep(5)
    await loop.run_in_executor(None, asterisks["a"].start)
    await asyncio.sleep(WINDOW_S)
    stop.set()
    await generator
    await asyncio.gather(*tasks)
    return calls, faults


def report(calls: list[Call], faults: list[tuple[str, float]], serves: dict[str, Serve]) -> None:
    entries = sorted(e for serve in serves.values() for e in serve.entries())
    # How long after a call starts its entry is logged, from the calm before the first fault:
    # the n-th call there is the n-th entry. Windows of entries are shifted by it.
    calm = [c.at for c in calls if c.at < faults[0][1]]
    calm_entries = [t for t, _ in entries if t < faults[0][1]]
    delays = sorted(e - c for c, e in zip(calm, calm_entries, strict=False))
    shift = delays[len(delays) // 2] if delays else 0.0
    print(f"(a call's entry follows its start by {shift * 1000:.0f} ms, median of the calm before the faults)")
    calm_failed = [c for c in calls if c.at < faults[0][1] and c.returncode != 0]
    if calm_failed:
        print(f"{len(calm_failed)} calls failed before any fault; the first one's SIPp output ends:\n"
              f"{calm_failed[0].output[-1500:]}")
    for name, at in faults:
        offered = [c for c in calls if at <= c.at < at + WINDOW_S]
        failed = [c for c in offered if c.returncode != 0]
        window = [e for e in entries if at + shift <= e[0] < at + WINDOW_S + shift]
        normal = sum(1 for _, degraded in window if not degraded)
        degraded = sum(1 for _, d in window if d) + max(0, len(offered) - len(failed) - len(window))
        stamps = [at] + [t for t, _ in window] + [at + WINDOW_S + shift]
        gap = max(b - a for a, b in itertools.pairwise(stamps))
        in_flight = [c for c in calls if c.at < at and c.returncode != 0 and c.ended >= at]
        print(f"{name}:\n  offered {len(offered)}, served normally {normal}, degraded {degraded}, failed {len(failed)}"
              f" (goal 0); longest gap between call entries {gap:.2f} s; calls already in progress that failed: "
              f"{len(in_flight)}", flush=True)
        rerouted = sum(1 for c in offered if c.rerouted)
        if rerouted:
            print(f"  ({rerouted} refused with 503 by Asterisk A while it shut down, placed again on B as an SBC "
                  "does; counted by their second attempt)")
        if "crashed" in name:
            print("  (calls in progress on a crashed server are lost with it: their media and channels were there)")


if __name__ == "__main__":
    sys.exit(main())
