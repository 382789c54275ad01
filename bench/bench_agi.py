"""FastAGI call-entry benchmark: hotline vs panoramisk 1.4 vs pyst2 process-per-call.

A load generator plays Asterisk's side of FastAGI (environment block, `200 result=1` to every
command) against each server, each in its own process, all on loopback, one redis-server.
It reports call entries per second and latency p50/p99 at concurrency 1, 100 and 1000, the
ratios against the peers measured in the same run, and hotline's memory over 100,000 entries.
The generator runs on uvloop for every server alike; `hotline-2w` is `hotline serve --workers 2`.

    .venv/bin/python bench/bench_agi.py [--seconds 5] [--soak 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import uvloop
from redis.asyncio import Redis

from harness.agi_peer import environment
from harness.procs import free_tcp_port
from harness.redis_server import RedisServer
from hotline.app import call_path_compiled
from hotline_core.policy import load_policy
from tier_lookup.importer import ImportOptions, import_table
from tier_lookup.store import TierStore
from tier_lookup.tables import RowContext

HERE = Path(__file__).resolve().parent
# AGI commands each server sends per call: hotline one EXEC MSet; the peers one SET VARIABLE per variable.
EXPECTED = {"hotline": 1, "hotline-2w": 1, "panoramisk": 11, "pyst2": 11, "floor": 1}
# CPU per entry: this many entries at this concurrency, CPU read from /proc before and after.
CPU_ENTRIES = 20_000
CPU_CONCURRENCY = 50
CPU_SERVERS = ("floor", "hotline", "hotline-2w", "panoramisk")


@dataclass
class Run:
    latencies: list[float] = field(default_factory=list)
    failures: int = 0
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0

    def pct(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else float("nan")


class AsteriskSide(asyncio.Protocol):
    """One call entry from Asterisk's side: cheap enough that the generator is not the bottleneck."""

    def __init__(self, env: bytes, done: asyncio.Future[int]):
        self.env = env
        self.done = done
        self.buffer = b""
        self.commands = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        transport.write(self.env)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        lines = self.buffer.count(b"\n")
        if lines:
            self.buffer = self.buffer[self.buffer.rfind(b"\n") + 1 :]
            self.commands += lines
            self.transport.write(b"200 result=1\n" * lines)  # type: ignore[attr-defined]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(self.commands)


async def one_call(port: int, env: bytes, expected_commands: int) -> bool:
    loop = asyncio.get_running_loop()
    done: asyncio.Future[int] = loop.create_future()
    transport, _ = await loop.create_connection(lambda: AsteriskSide(env, done), "127.0.0.1", port)
    try:
        commands = await asyncio.wait_for(done, 30)
    finally:
        transport.close()
    return commands == expected_commands


async def load(
    port: int, envs: list[bytes], concurrency: int, seconds: float, expected: int, max_calls: int | None = None
) -> Run:
    run = Run()
    deadline = time.perf_counter() + seconds
    started = time.perf_counter()
    issued = 0

    async def worker(w: int) -> None:
        nonlocal issued
        i = w
        while time.perf_counter() < deadline and (max_calls is None or issued < max_calls):
            issued += 1
            t0 = time.perf_counter()
            try:
                ok = await one_call(port, envs[i % len(envs)], expected)
            except (OSError, TimeoutError):
                ok = False
            if ok:
                run.latencies.append(time.perf_counter() - t0)
            else:
                run.failures += 1
            i += concurrency

    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    run.seconds = time.perf_counter() - started
    return run


def listening(port: int) -> bool:
    """Whether a socket listens on `port`, read from /proc rather than by connecting: a probe
    connection that closes at once sends panoramisk's FastAGI header loop spinning forever."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "0A" and int(fields[1].split(":")[1], 16) == port:
            return True
    return False


def wait_port(port: int, proc: subprocess.Popen[bytes], name: str) -> None:
    for _ in range(200):
        if proc.poll() is not None:
            raise SystemExit(f"{name} exited early with {proc.returncode}")
        if listening(port):
            return
        time.sleep(0.05)
    raise SystemExit(f"{name} did not listen on {port}")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process and its live children (a `--workers N` serve forks), in seconds."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    pids = [pid]
    for task in Path(f"/proc/{pid}/task").iterdir():
        pids += [int(c) for c in (task / "children").read_text().split()]
    for one in pids:
        # Fields after the command name (which may hold spaces) start at state, field 3.
        fields = Path(f"/proc/{one}/stat").read_text().rpartition(")")[2].split()
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def cpu_per_entry(pid: int, port: int, envs: list[bytes], expected: int) -> tuple[float, Run]:
    """Microseconds of the server's CPU per call entry over CPU_ENTRIES entries."""
    before = cpu_seconds(pid)
    run = uvloop.run(load(port, envs, CPU_CONCURRENCY, 3600, expected, max_calls=CPU_ENTRIES))
    used = cpu_seconds(pid) - before
    return used / max(1, len(run.latencies)) * 1e6, run


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def prepare(redis_url: str, callers: list[str]) -> None:
    policy = load_policy()
    redis = Redis.from_url(redis_url, decode_responses=True)
    store = TierStore(redis, "hl")
    rng = random.Random(3)
    rows = "number,arpu\n" + "".join(f"{13_000_000_000 + rng.randrange(10**9)},400\n" for _ in range(100_000))
    rows += "".join(f"{c},500\n" for c in callers[::2])
    await import_table(store, "highend", rows.encode(), "bench", RowContext(policy.zone, {}), ImportOptions())
    # The peers get the same answer for the same caller from one GET.
    for caller in callers:
        values = {"HOTLINE_TIER": "highend", "QUEUE_PRIO": "60"} if caller in callers[::2] else {}
        await redis.set(f"peer:{caller}", json.dumps(values))
    await redis.aclose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0, help="per measurement")
    parser.add_argument("--soak", type=int, default=100_000, help="entries for the memory check")
    parser.add_argument("--cpu-only", action="store_true", help="only the CPU-per-entry table")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of the CPU table")
    args = parser.parse_args()
    callers = [str(13_900_000_000 + i) for i in range(1000)]
    envs = [environment("entry", c, f"1732262400.{i}") for i, c in enumerate(callers)]
    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory(prefix="hotline-bench-agi-") as tmp:
        redis = RedisServer(Path(tmp) / "redis").start()
        try:
            uvloop.run(prepare(redis.url, callers))
            ports = {name: free_tcp_port() for name in EXPECTED}
            env = {
                **os.environ,
                "HOTLINE_REDIS_URL": redis.url,
                "HOTLINE_AGI_PORT": str(ports["hotline"]),
                "HOTLINE_LOG_FORMAT": "json",
            }
            # Each hotline instance needs its own HTTP port (agent screen, delivery reports).
            http_ports = {name: str(free_tcp_port()) for name in ("hotline", "hotline-2w")}
            commands = {
                "hotline": [str(Path(sys.executable).parent / "hotline"), "serve"],
                "hotline-2w": [str(Path(sys.executable).parent / "hotline"), "serve", "--workers", "2",
                               "--agi-port", str(ports["hotline-2w"])],
                "panoramisk": [
                    sys.executable,
                    str(HERE / "peers" / "panoramisk_peer.py"),
                    str(ports["panoramisk"]),
                    redis.url,
                ],
                "pyst2": [sys.executable, str(HERE / "peers" / "pyst2_peer.py"), str(ports["pyst2"]), redis.url],
                "floor": [sys.executable, str(HERE / "peers" / "floor_peer.py"), str(ports["floor"])],
            }
            for name, command in commands.items():
                own_env = {**env, "HOTLINE_HTTP_PORT": http_ports.get(name, "0")}
                proc = subprocess.Popen(command, env=own_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                procs.append(proc)
                wait_port(ports[name], proc, name)
            pids = {name: proc.pid for name, proc in zip(commands, procs, strict=True)}
            for name in ("hotline", "hotline-2w", "panoramisk", "floor"):  # warm-up: connections, scripts, caches
                uvloop.run(load(ports[name], envs, 20, 0.5, EXPECTED[name]))
            # The served code is these files: say whether its call path ran compiled (setup.py).
            print("hotline's call path: " + ("compiled (mypyc)" if call_path_compiled() else
                                             "pure Python (`make compiled` compiles it)"))
            print(f"CPU per entry ({CPU_ENTRIES:,} entries at concurrency {CPU_CONCURRENCY}, utime+stime of the "
                  f"server process from /proc; median of {args.rounds} interleaved rounds):")
            samples: dict[str, list[tuple[float, Run]]] = {name: [] for name in CPU_SERVERS}
            for _ in range(args.rounds):  # interleaved, so a slow spell of the machine hits every server
                for name in CPU_SERVERS:
                    samples[name].append(cpu_per_entry(pids[name], ports[name], envs, EXPECTED[name]))
            cpu: dict[str, float] = {}
            for name in CPU_SERVERS:
                ordered = sorted(samples[name], key=lambda sample: sample[0])
                cpu[name], run = ordered[len(ordered) // 2]
                spread = f"{ordered[0][0]:.0f}-{ordered[-1][0]:.0f}"
                print(f"  {name:<11} {cpu[name]:7.1f} us per entry (rounds {spread})  {run.rate:,.0f} entries/s, "
                      f"p50 {run.pct(0.5):.2f} ms, failures {sum(r.failures for _, r in ordered)}", flush=True)
            print(f"ratio: hotline / panoramisk = {cpu['hotline'] / cpu['panoramisk']:.2f} (goal <= 0.33); "
                  f"hotline / floor = {cpu['hotline'] / cpu['floor']:.2f}; "
                  f"panoramisk / floor = {cpu['panoramisk'] / cpu['floor']:.2f}")
            one = uvloop.run(load(ports["hotline"], envs, 1, args.seconds, EXPECTED["hotline"]))
            print(f"latency a caller adds at concurrency 1: hotline p50 {one.pct(0.5):.2f} ms (goal < 1 ms), "
                  f"p99 {one.pct(0.99):.2f} ms", flush=True)
            if args.cpu_only:
                return 0
            results: dict[tuple[str, int], Run] = {}
            plan = [("hotline", c) for c in (1, 100, 1000)] + [("hotline-2w", c) for c in (100, 1000)]
            plan += [("panoramisk", c) for c in (1, 100, 1000)] + [("pyst2", 1), ("pyst2", 100)]
            for name, concurrency in plan:
                run = uvloop.run(load(ports[name], envs, concurrency, args.seconds, EXPECTED[name]))
                results[(name, concurrency)] = run
                print(
                    f"{name:<11} concurrency {concurrency:>4}: {run.rate:8,.0f} entries/s  p50 {run.pct(0.5):7.2f} ms  "
                    f"p99 {run.pct(0.99):7.2f} ms  failures {run.failures}",
                    flush=True,
                )
            print("pyst2 at concurrency 1000 not run: 1000 simultaneous Python processes need ~25 GB here.")
            for c in (1, 100, 1000):
                ours = results[("hotline", c)].rate
                if ("hotline-2w", c) in results:
                    two = results[("hotline-2w", c)].rate / results[("panoramisk", c)].rate
                    print(f"ratio at concurrency {c:>4}: hotline with 2 workers / panoramisk = {two:5.2f}")
                print(
                    f"ratio at concurrency {c:>4}: hotline / panoramisk = {ours / results[('panoramisk', c)].rate:5.2f}"
                    + (
                        f", hotline / pyst2 = {ours / results[('pyst2', c)].rate:6.1f}"
                        if ("pyst2", c) in results
                        else ""
                    )
                )
            hotline_pid = procs[0].pid
            before = rss_mb(hotline_pid)
            soak = uvloop.run(load(ports["hotline"], envs, 100, 3600, EXPECTED["hotline"], max_calls=args.soak))
            after = rss_mb(hotline_pid)
            print(
                f"memory over {len(soak.latencies):,} more entries (concurrency 100, {soak.rate:,.0f}/s, "
                f"{soak.failures} failures): RSS {before:.1f} MB -> {after:.1f} MB"
            )
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
            redis.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
