"""The delivery-report endpoint the gateway calls back: GET /sms/dlr?id=JOB&status=N&token=T.

The token (from the settings) keeps anyone else on the host from marking messages delivered."""

from __future__ import annotations

import hmac

from aiohttp import web
from redis.asyncio import Redis
from redis.exceptions import RedisError

from hotline.sms.worker import record_report
from hotline_core.metrics import Metrics


def report_routes(redis: Redis, prefix: str, token: str, metrics: Metrics | None = None) -> list[web.RouteDef]:
    async def dlr(request: web.Request) -> web.Response:
        # As bytes: a token with characters outside ASCII is simply wrong, not a server error.
        if not hmac.compare_digest(request.query.get("token", "").encode(), token.encode()):
            return web.Response(status=403, text="bad token\n")
        job_id = request.query.get("id", "")
        try:
            status = int(request.query.get("status", ""))
        except ValueError:
            return web.Response(status=400, text="status must be a number\n")
        if not job_id or "-" not in job_id:
            return web.Response(status=400, text="id must be a job id\n")
        try:
            name = await record_report(redis, prefix, job_id, status, metrics)
        except RedisError:
            # Kannel retries a report that did not get a 2xx: nothing is lost.
            return web.Response(status=503, text="try again\n")
        if name is None:
            return web.Response(status=404, text="no such job\n")
        return web.Response(text=f"{name}\n")

    return [web.get("/sms/dlr", dlr)]
