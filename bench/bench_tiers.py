"""Tier-table benchmark: bulk import rate, Redis memory per row, lookup latency vs a raw GET.

Runs its own redis-server on an ephemeral loopback port and prints figures; targets are
compared against floors measured in the same run, not against constants of another machine.

    .venv/bin/python bench/bench_tiers.py [--rows 1000000] [--lookups 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import random
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
from tier_lookup.importer import ImportOptions, import_table
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--lookups", type=int, default=20_000)
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
