"""Tier-table benchmark: bulk import rate, Redis memory per row, lookup latency vs a raw GET.

Runs its own redis-server on an ephemeral loopback port and prints figures; targets are
compared against floors measured in the same run, not against constants of another machine.

    .venv/bin/python bench/bench_tiers.py [--rows 1000000] [--lookups 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import uvloop
from redis.asyncio import Redis

from harness.redis_server import RedisServer
from hotline_core.policy import load_policy
from hotline_core.redispipe import RedisPipe
from tier_lookup.importer import ImportOptions, Mode, import_table
from tier_lookup.reader import TierReader
from tier_lookup.service import TierLookup
from tier_lookup.store import TierStore
from tier_lookup.tables import RowContext


def generate(path: Path, rows: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    numbers = rng.sample(range(13_000_000_000, 20_000_000_000), rows)
    with path.open("w", encoding="utf-8") as out:
        out.write("number,arpu\n")
        for n in numbers:
            out.write(f"{n},{rng.randint(360, 2000)}\n")
    return [str(n) for n in numbers]


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def latencies(op: Callable[[int], Awaitable[object]], total: int, concurrency: int) -> list[float]:
    out: list[float] = []
    per_worker = total // concurrency

    async def worker(w: int) -> None:
        for i in range(per_worker):
            t0 = time.perf_counter()
            await op(w * per_worker + i)
            out.append(time.perf_counter() - t0)

    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    return out


def fmt(samples: list[float]) -> str:
    return f"p50 {percentile(samples, 0.5) * 1e6:7.0f} us  p99 {percentile(samples, 0.99) * 1e6:7.0f} us"


async def run(args: argparse.Namespace, url: str, workdir: Path) -> None:
    policy = load_policy()
    csv_path = workdir / "highend.csv"
    t0 = time.perf_counter()
    numbers = generate(csv_path, args.rows)
    print(f"generated {args.rows:,} rows in {time.perf_counter() - t0:.1f} s")

    redis = Redis.from_url(url, decode_responses=True)
    store = TierStore(redis, "bench")
    ctx = RowContext(zone=policy.zone, brands={})
    before = int((await redis.info("memory"))["used_memory"])
    report = await import_table(store, "highend", csv_path.read_bytes(), str(csv_path), ctx, ImportOptions())
    after = int((await redis.info("memory"))["used_memory"])
    assert report.ok, report.summary()
    rate = report.rows_read / report.seconds
    per_row = (after - before) / report.applied
    print(f"import: {report.applied:,} rows in {report.seconds:.2f} s = {rate:,.0f} rows/s "
          f"(target >= 200,000: {'met' if rate >= 200_000 else 'NOT met'})")
    # The peer: the same file read whole and grouped in memory (how an upsert into an empty table
    # goes), in the same run; the replace above streams it through local disk instead.
    whole = await import_table(TierStore(redis, "bench-whole"), "highend", csv_path.read_bytes(), str(csv_path), ctx,
                               ImportOptions(mode=Mode.UPSERT))
    print(f"  the same rows read whole: {whole.rows_read / whole.seconds:,.0f} rows/s; streamed / whole = "
          f"{whole.seconds / report.seconds:.2f} of its speed")
    await redis.delete(*[key async for key in redis.scan_iter("bench-whole:*")])
    print(f"memory: {per_row:.1f} bytes/row of Redis used_memory (target <= 48: "
          f"{'met' if per_row <= 48 else 'NOT met'})")

    # The call path's own client (hotline_core.redispipe) for both the lookup and the floor, so the
    # ratio is what the lookup adds over the cheapest possible round trip with that client.
    pipe = RedisPipe(url, timeout_s=1.0)
    lookup = TierLookup(TierReader(pipe, "bench"), policy, budget_s=1.0)
    await redis.set("bench:raw", "x")
    rng = random.Random(1)
    # Half hits, half misses, as the hotline sees: most callers are in no table.
    probes = [numbers[rng.randrange(len(numbers))] if i % 2 else str(rng.randrange(13_000_000_000, 20_000_000_000))
              for i in range(args.lookups)]
    hits = [(await lookup.identify(p)).tier for p in probes[:1000]].count("highend")
    print(f"sanity: {hits} of the first 1,000 probes resolved as highend (about 500 expected)")
    for concurrency in (1, 100):
        raw = await latencies(lambda i: pipe.execute("GET", "bench:raw"), args.lookups, concurrency)
        look = await latencies(lambda i: lookup.identify(probes[i]), args.lookups, concurrency)
        ratio = percentile(look, 0.99) / percentile(raw, 0.99)
        print(f"concurrency {concurrency:>3}: raw GET {fmt(raw)} | lookup {fmt(look)} | "
              f"lookup p99 / GET p99 = {ratio:.2f}" + (" (target <= 3: met)" if concurrency == 1 and ratio <= 3
                                                      else " (target <= 3: NOT met)" if concurrency == 1 else ""))
    await redis.aclose()
    await pipe.close()
    big_import(args.big_mb, url, workdir)


def big_import(megabytes: int, url: str, workdir: Path) -> None:
    """A monthly rural-liaison file of `megabytes` through the CLI, as an operator runs it: its
    time and the import process's peak RSS (the whole file is never held: see docs/benchmarks.md)."""
    path = workdir / "rural.csv"
    rng = random.Random(11)
    names, stations = ("王", "李", "张", "刘", "陈"), ("石门村服务站", "横峰乡服务站", "青山村服务站")
    rows = 0
    with path.open("w", encoding="utf-8") as out:
        out.write("number,name,station\n")
        while out.tell() < megabytes * 1_000_000:
            # Distinct numbers spread over the whole range (7919 is prime to the range's size).
            out.write("".join(f"{13_000_000_000 + (rows + i) * 7919 % (7 * 10**9)},{rng.choice(names)},"
                              f"{rng.choice(stations)}\n" for i in range(10_000)))
            rows += 10_000
    size = path.stat().st_size / 1e6
    tiny = workdir / "tiny.csv"
    tiny.write_text("number,name,station\n13800000001,王,石门村服务站\n", encoding="utf-8")
    env = {**os.environ, "HOTLINE_REDIS_URL": url, "HOTLINE_REDIS_PREFIX": "bigimport"}
    own = cli_import(env, tiny)[1]  # what the command needs whatever the file
    seconds, peak = cli_import(env, path)
    print(f"big import (hotline tiers import, rural, {size:,.0f} MB, {rows:,} rows): {seconds:.1f} s = "
          f"{rows / seconds:,.0f} rows/s; peak RSS {peak:,.0f} MB = {peak / size:.1f} x the file, of which "
          f"{own:,.0f} MB the command takes for a one-row file (was 11.6 x the file before the replace streamed)")


def cli_import(env: dict[str, str], path: Path) -> tuple[float, float]:
    """`hotline tiers import rural PATH`: seconds and the process's peak RSS in MB, read from its
    VmHWM while it runs (a child's rusage would count this bench's own memory, copied at fork)."""
    started = time.perf_counter()
    proc = subprocess.Popen([str(Path(sys.executable).parent / "hotline"), "tiers", "import", "rural", str(path),
                             "--allow-shrink"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    peak = 0.0
    status = Path(f"/proc/{proc.pid}/status")
    while proc.poll() is None:
        try:
            for line in status.read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]) / 1024)
        except OSError:
            pass  # it just ended
        time.sleep(0.02)
    seconds = time.perf_counter() - started
    output = (proc.stdout.read() if proc.stdout else b"") + (proc.stderr.read() if proc.stderr else b"")
    assert proc.returncode == 0, output.decode()
    return seconds, peak


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--lookups", type=int, default=20_000)
    parser.add_argument("--big-mb", type=int, default=100, help="size of the file for the memory check")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hotline-bench-") as tmp:
        server = RedisServer(Path(tmp) / "redis").start()
        try:
            uvloop.run(run(args, server.url, Path(tmp)))
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
