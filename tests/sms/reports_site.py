"""The delivery-report endpoint on a port of its own, for tests that run Kannel against it."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web
from redis.asyncio import Redis

from harness.procs import free_tcp_port
from hotline.sms.reports import report_routes


async def reports_site(redis: Redis, prefix: str, token: str) -> AsyncIterator[int]:
    """Serve `/sms/dlr` on loopback; yields its port, stops when closed."""
    app = web.Application()
    app.add_routes(report_routes(redis, prefix, token))
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_tcp_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield port
    finally:
        await runner.cleanup()
