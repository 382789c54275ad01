"""The local stack behind `make up` / `make down`: Redis on loopback with demo tier tables.

Production runs Redis and Asterisk under its own service manager; this module exists so a
newcomer gets a working hotline with one command. State lives under `.run/` in the checkout.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from datetime import datetime, timedelta
from pathlib import Path

from hotline.app import open_services
from hotline.policy import load_policy
from hotline.redis_server import RedisServer, RedisServerError, port_in_use, stop_pid_file
from hotline.settings import load_settings
from tier_lookup.importer import ImportOptions, import_table
from tier_lookup.tables import RowContext

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "demo"
DEMO_TABLES = ("highend", "campus", "rural", "brand", "redlist", "blacklist")


def run_dir() -> Path:
    return Path(os.environ.get("HOTLINE_RUN_DIR", ROOT / ".run"))


def start_redis(port: int) -> str:
    data_dir = run_dir() / "redis"
    pid_file = data_dir / "redis.pid"
    url = f"redis://127.0.0.1:{port}/0"
    if pid_file.exists():
        pid = pid_file.read_text().strip()
        if pid.isdigit() and Path(f"/proc/{pid}").exists():
            print(f"redis: already running (pid {pid}) on 127.0.0.1:{port}")
            return url
        print(f"redis: removing stale pid file {pid_file} (process {pid} is gone)")
        pid_file.unlink()
    if port_in_use(port):
        raise RedisServerError(
            f"port {port} on 127.0.0.1 is taken by another program; set HOTLINE_DEV_REDIS_PORT to a free port"
        )
    server = RedisServer(data_dir, port=port, persist=True)
    server.start()
    assert server.process is not None
    # Detach: `make up` leaves Redis running for `make down` to stop by its pid file.
    print(f"redis: started pid {server.process.pid} on 127.0.0.1:{port}, data in {data_dir}")
    return url


async def load_demo(redis_url: str) -> None:
    settings = load_settings(os.environ, {"redis_url": redis_url})
    policy = load_policy(settings.policy_file)
    brands = {code: code for code in policy.brands if code != "unknown"}
    ctx = RowContext(zone=policy.zone, brands=brands)
    activated = (datetime.now(policy.zone) - timedelta(days=3)).strftime("%Y-%m-%d %H:%M:%S")
    files = {table: (DEMO / f"{table}.csv").read_bytes() for table in DEMO_TABLES}
    files["newsub"] = f"number,activated_at\n13800000002,{activated}\n".encode()
    async with open_services(settings, policy) as services:
        for table, data in files.items():
            report = await import_table(services.store, table, data, f"demo/{table}.csv", ctx,
                                        ImportOptions(allow_shrink=True))
            if not report.ok:
                raise SystemExit(report.summary())
            print(f"demo: {table:<9} {report.applied} rows")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hotline.devstack")
    parser.add_argument("action", choices=["up", "down"])
    args = parser.parse_args(argv)
    port = int(os.environ.get("HOTLINE_DEV_REDIS_PORT", "6390"))
    if args.action == "down":
        stopped = stop_pid_file(run_dir() / "redis" / "redis.pid")
        print("redis: stopped" if stopped else "redis: was not running")
        return 0
    try:
        url = start_redis(port)
    except RedisServerError as exc:
        print(f"redis: {exc}", file=sys.stderr)
        return 1
    asyncio.run(load_demo(url))
    print(f"\nHOTLINE_REDIS_URL={url}")
    print("try:  .venv/bin/hotline tiers lookup 13800000004 --redis-url " + url)
    print("now starting `hotline serve` (FastAGI on 127.0.0.1:4573); Ctrl-C stops it, `make down` stops Redis\n")
    sys.stdout.flush()
    hotline = str(Path(sys.executable).parent / "hotline")
    os.execve(hotline, [hotline, "serve"], {**os.environ, "HOTLINE_REDIS_URL": url})


if __name__ == "__main__":
    sys.exit(main())
