"""Peer for bench_agi.py: the same call-entry work on panoramisk 1.4's FastAGI Application.

One Redis GET for the caller, then the same eleven SET VARIABLE commands. Run by the bench as
    python bench/peers/panoramisk_peer.py PORT REDIS_URL
"""

from __future__ import annotations

import asyncio
import json
import sys

from panoramisk import fast_agi
from redis.asyncio import Redis

NAMES = ("HOTLINE_TIER", "HOTLINE_TIER_LABEL", "HOTLINE_BRAND", "HOTLINE_LEVEL", "QUEUE_PRIO",
         "HOTLINE_SKILL_CHAIN", "HOTLINE_QUEUE", "HOTLINE_MAX_WAIT", "HOTLINE_GREETING", "HOTLINE_FLAGS",
         "HOTLINE_DEGRADED")


async def main(port: int, redis_url: str) -> None:
    redis = Redis.from_url(redis_url, decode_responses=True)
    app = fast_agi.Application()  # panoramisk must be built inside the running loop

    async def entry(request: fast_agi.Request) -> None:
        found = await redis.get(f"peer:{request.headers.get('agi_callerid', '')}")
        values = json.loads(found) if found else {"HOTLINE_TIER": "normal", "QUEUE_PRIO": "10"}
        for name in NAMES:
            await request.send_command(f'SET VARIABLE {name} "{values.get(name, "")}"')

    app.add_route("entry", entry)
    server = await asyncio.start_server(app.handler, "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), sys.argv[2]))
