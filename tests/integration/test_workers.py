"""`hotline serve --workers 2`: both answer on one port; SIGTERM stops every worker."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from harness.agi_peer import environment, play
from harness.procs import alive, free_tcp_port, tcp_listening
from harness.redis_server import RedisServer
from harness.waiting import until

HOTLINE = str(Path(sys.executable).parent / "hotline")


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(stat[1]) == pid:
                found.append(int(entry.name))
    return found


async def test_workers_share_the_port_and_stop_together(redis_server: RedisServer) -> None:
    port = free_tcp_port()
    env = {**os.environ, "HOTLINE_REDIS_URL": redis_server.url, "HOTLINE_AGI_PORT": str(port),
           "HOTLINE_HTTP_PORT": str(free_tcp_port()), "HOTLINE_LOG_FORMAT": "json"}
    proc = await asyncio.create_subprocess_exec(HOTLINE, "serve", "--workers", "2", env=env,
                                                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    try:
        await until(lambda: tcp_listening(port) and len(children_of(proc.pid)) == 2, "two workers on the port", 5,
                    every=0.05)
        workers = children_of(proc.pid)
        assert len(workers) == 2
        results = await asyncio.gather(*(play("127.0.0.1", port, environment("entry", "13900000000", f"2.{i}"))
                                         for i in range(20)))
        assert all(r.variables()["HOTLINE_TIER"] == "normal" for r in results)
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 15)
    await asyncio.sleep(0.2)
    assert not [w for w in workers if alive(w)]
