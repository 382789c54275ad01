"""The pages' application, assembled from features: sign-in and the role check once, then each
feature's routes under the access rules it declared beside them. `hotline serve` and the tests
build it here alike."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

import asyncpg
import structlog
from aiohttp import web
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from hotline.web.access import SignIn, access_middleware
from hotline.web.auth import Sessions
from hotline_core.feature import Feature

# What a page meets when a store it reads is away (Redis restarting, PostgreSQL failing over).
UNAVAILABLE = (RedisConnectionError, RedisTimeoutError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError,
               ConnectionError, TimeoutError)
log = structlog.get_logger("web")


@web.middleware
async def unavailable(request: web.Request,
                      handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    """A store that is away is a 503 the person can act on (try again shortly), said once in the
    log, not a 500 with a traceback."""
    try:
        return await handler(request)
    except UNAVAILABLE as exc:
        log.warning("a page could not reach its store", path=request.path, error=f"{type(exc).__name__}: {exc}"[:200])
        return web.Response(status=503, text="temporarily unavailable (Redis or the records database); "
                                             "try again shortly\n", headers={"Retry-After": "5"})


def pages_app(sessions: Sessions, sign_in: SignIn, features: Sequence[Feature]) -> web.Application:
    rules = [rule for feature in features for rule in feature.access]
    app = web.Application(middlewares=[unavailable, access_middleware(sessions, rules)])
    app.add_routes(sign_in.routes())
    for feature in features:
        app.add_routes(feature.routes)
    return app
