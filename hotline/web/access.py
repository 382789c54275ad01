"""Sign-in and the role check, once for every page and API (aiohttp middleware).

Rules map a path prefix to the roles allowed there; a page asked for without a session sends
the browser to the sign-in form, an API or event stream answers 401, a signed-in person of
another role 403. A form posted from another origin is refused (cross-site request forgery),
and the session cookie is SameSite=Strict and HttpOnly.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from urllib.parse import quote, urlsplit

import structlog
from aiohttp import web
from aiohttp.typedefs import Middleware
from redis.asyncio import Redis
from redis.exceptions import RedisError

from hotline.web.auth import COOKIE, SESSION_TTL_S, Principal, Sessions
from hotline_core.feature import Rule
from hotline_core.keys import RedisKeys

log = structlog.get_logger("web.access")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
HOME = {"agent": "/agent", "handler": "/workorders", "supervisor": "/board"}
# Who made this request (None: nobody signed in), for handlers that show per-person data.
PRINCIPAL: web.RequestKey[Principal | None] = web.RequestKey("principal", Principal)


def _matches(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix.rstrip("/") + "/")


def _safe_next(target: str, default: str) -> str:
    """Only a path on this site: a sign-in must not bounce anyone elsewhere."""
    parts = urlsplit(target)
    return target if target.startswith("/") and not target.startswith("//") and not parts.netloc else default


def principal_of(request: web.Request) -> Principal | None:
    return request.get(PRINCIPAL)


def access_middleware(sessions: Sessions, rules: Sequence[Rule]) -> Middleware:
    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method == "POST":
            origin = request.headers.get("Origin")
            if origin and urlsplit(origin).netloc != request.host:
                log.warning("cross-origin form refused", path=request.path, origin=origin[:80])
                return web.Response(status=403, text="forms are accepted from this site only\n")
        for prefix, roles in rules:
            if not _matches(request.path, prefix):
                continue
            try:
                principal = await sessions.principal(request.cookies.get(COOKIE, ""))
            except (RedisError, OSError):
                return web.Response(status=503, text="sign-in is unavailable (Redis); try again shortly\n")
            request[PRINCIPAL] = principal
            if principal is None:
                wants_page = request.method == "GET" and "text/html" in request.headers.get("Accept", "")
                if wants_page:
                    raise web.HTTPSeeOther(f"/login?next={quote(request.path_qs)}")
                return web.Response(status=401, text="sign in first\n")
            if principal.role not in roles:
                return web.Response(status=403, text=f"not for the {principal.role} role\n")
            break
        response = await handler(request)
        if response.prepared:  # an event stream: its headers are gone already
            return response
        # No page of ours may be framed by another site, nor load scripts from elsewhere.
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Content-Security-Policy",
                                    "default-src 'self'; script-src 'self' 'unsafe-inline'; "
                                    "style-src 'self' 'unsafe-inline'; frame-ancestors 'none'")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        return response

    return check


@dataclass(frozen=True, slots=True)
class Limits:
    """Refused sign-ins allowed per id and per address within the window, then 429."""

    per_user: int = 5
    per_address: int = 30
    window_s: int = 300


class SignIn:
    """GET /login (the form), POST /login (and the agent page's /agent/login), POST /logout.
    Refused sign-ins are counted per id and per address in Redis (shared by every instance)."""

    def __init__(self, sessions: Sessions, redis: Redis, prefix: str, secure_cookie: bool = False,
                 limits: Limits = Limits()):
        self._sessions = sessions
        self._redis = redis
        self._keys = RedisKeys(prefix)
        self._limits = limits
        self._secure = secure_cookie
        self._page = resources.files("hotline.web").joinpath("login.html").read_text(encoding="utf-8")
        # Counters known to be over their limit, until when (loop time): a flood of refused
        # sign-ins is then answered without a Redis round trip or a log line each, so it takes
        # less of the event loop the call path shares. A limit only ends by its window expiring.
        self._limited: dict[str, float] = {}

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/login", self._form), web.post("/login", self._sign_in),
                web.post("/agent/login", self._sign_in), web.post("/logout", self._sign_out),
                web.post("/agent/logout", self._sign_out)]

    async def _form(self, request: web.Request) -> web.StreamResponse:
        target = _safe_next(request.query.get("next", ""), "")
        return web.Response(text=self._page.replace("@@NEXT@@", quote(target, safe="/?=&")),
                            content_type="text/html")

    async def _too_many(self, counters: list[tuple[str, int]]) -> tuple[int, bool]:
        """Seconds until signing in may be tried again (0: now), and whether that was known here
        already (then it need not be logged again)."""
        now = asyncio.get_running_loop().time()
        for key, _limit in counters:
            until = self._limited.get(key, 0.0)
            if until > now:
                return max(1, int(until - now)), True
        for key, limit in counters:
            failures = await self._redis.get(key)
            if failures is not None and int(failures) >= limit:
                wait = max(1, int(await self._redis.ttl(key)))
                if len(self._limited) >= 10_000:  # many addresses: forget the ended limits first
                    self._limited = {k: t for k, t in self._limited.items() if t > now}
                self._limited[key] = now + wait
                return wait, False
        return 0, False

    async def _sign_in(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        user = str(form.get("user") or form.get("agent_id") or "")[:64]
        address = request.remote or "?"
        counters = [(self._keys.sign_in_failures(f"user:{user}"), self._limits.per_user),
                    (self._keys.sign_in_failures(f"addr:{address}"), self._limits.per_address)]
        wait, known = await self._too_many(counters)
        if wait:
            if not known:
                log.warning("sign-in refused: too many failures", user=user[:32], retry_after_s=wait)
            return web.Response(status=429, text="too many refused sign-ins; try again later\n",
                                headers={"Retry-After": str(wait)})
        signed = await self._sessions.sign_in(user, str(form.get("secret", ""))[:256])
        if signed is None:
            async with self._redis.pipeline(transaction=False) as tx:
                for key, _limit in counters:
                    tx.incr(key)
                    tx.expire(key, self._limits.window_s, nx=True)
                await tx.execute()
            log.warning("sign-in refused", user=user[:32])
            return web.Response(status=403, text="wrong id or secret\n")
        await self._redis.delete(counters[0][0])
        token, principal = signed
        redirect = web.HTTPSeeOther(_safe_next(str(form.get("next", "")), HOME[principal.role]))
        redirect.set_cookie(COOKIE, token, httponly=True, samesite="Strict", max_age=SESSION_TTL_S,
                            secure=self._secure)
        raise redirect

    async def _sign_out(self, request: web.Request) -> web.StreamResponse:
        await self._sessions.sign_out(request.cookies.get(COOKIE, ""))
        redirect = web.HTTPSeeOther("/agent" if request.path.startswith("/agent") else "/login")
        redirect.del_cookie(COOKIE)
        raise redirect
