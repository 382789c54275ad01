"""Sign-in and the role check, once for every page and API (aiohttp middleware).

Rules map a path prefix to the roles allowed there; a page asked for without a session sends
the browser to the sign-in form, an API or event stream answers 401, a signed-in person of
another role 403. A form posted from another origin is refused (cross-site request forgery),
and the session cookie is SameSite=Strict and HttpOnly.
"""

from __future__ import annotations

import asyncio
import math
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
    """How refused sign-ins are slowed down, never locked out (docs/security.md has the design and
    its numbers against OWASP's guidance). Counted in Redis, shared by every instance."""

    pair_free: int = 5  # refused sign-ins of one id from one address before waits begin
    first_delay_s: float = 1.0  # then each further refusal doubles the wait ...
    max_delay_s: float = 900.0  # ... up to this
    # One id refused from addresses it has not signed in from (guessing from many places): past
    # this many in the window, those addresses wait too; its usual addresses do not.
    per_user: int = 50
    # One address (a call centre's NAT is the whole floor): past this many refusals in the window
    # it waits the window out, whatever the id; a floor of people mistyping does not get there.
    per_address: int = 300
    window_s: int = 900
    known_for_s: int = 30 * 86400  # an address an id signed in from counts as its usual one this long

    def delay(self, over: int) -> float:
        """The wait after the `over`-th refusal past the free ones (pure)."""
        return float(min(self.max_delay_s, self.first_delay_s * 2 ** max(over - 1, 0)))


class SignIn:
    """GET /login (the form), POST /login (and the agent page's /agent/login), POST /logout."""

    def __init__(self, sessions: Sessions, redis: Redis, prefix: str, secure_cookie: bool = False,
                 limits: Limits = Limits()):
        self._sessions = sessions
        self._redis = redis
        self._keys = RedisKeys(prefix)
        self._limits = limits
        self._secure = secure_cookie
        self._page = resources.files("hotline.web").joinpath("login.html").read_text(encoding="utf-8")
        # Waits known here, until when (loop time): a flood of refused sign-ins is then answered
        # without a Redis round trip or a log line each, so it takes less of the event loop the
        # call path shares. A wait only ends by its time passing.
        self._waiting: dict[str, float] = {}

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/login", self._form), web.post("/login", self._sign_in),
                web.post("/agent/login", self._sign_in), web.post("/logout", self._sign_out),
                web.post("/agent/logout", self._sign_out)]

    async def _form(self, request: web.Request) -> web.StreamResponse:
        target = _safe_next(request.query.get("next", ""), "")
        return web.Response(text=self._page.replace("@@NEXT@@", quote(target, safe="/?=&")),
                            content_type="text/html")

    async def _must_wait(self, waits: list[str]) -> tuple[float, bool]:
        """Seconds until signing in may be tried again (0: now), and whether that was known here
        already (then it need not be logged again)."""
        now = asyncio.get_running_loop().time()
        known = max((self._waiting.get(key, 0.0) - now for key in waits), default=0.0)
        if known > 0:
            return known, True
        async with self._redis.pipeline(transaction=False) as tx:
            for key in waits:
                tx.pttl(key)
            remaining = {key: int(ms) / 1000 for key, ms in zip(waits, await tx.execute(), strict=True) if int(ms) > 0}
        if not remaining:
            return 0.0, False
        if len(self._waiting) >= 10_000:  # many addresses: forget the ended waits first
            self._waiting = {k: t for k, t in self._waiting.items() if t > now}
        for key, seconds in remaining.items():
            self._waiting[key] = now + seconds
        return max(remaining.values()), False

    async def _refused(self, counters: dict[str, int]) -> None:
        """Count a refusal and set the waits it earns."""
        limits = self._limits
        async with self._redis.pipeline(transaction=False) as tx:
            for who in counters:
                tx.incr(self._keys.sign_in_failures(who))
                tx.expire(self._keys.sign_in_failures(who), limits.window_s, nx=True)
            replies = await tx.execute()
        counted = dict(zip(counters, replies[::2], strict=True))
        waits: dict[str, float] = {}
        for who, free in counters.items():
            over = int(counted[who]) - free
            if over > 0:
                waits[who] = float(limits.window_s) if who.startswith("addr:") else limits.delay(over)
        if waits:
            async with self._redis.pipeline(transaction=False) as tx:
                for who, seconds in waits.items():
                    tx.set(self._keys.sign_in_wait(who), "1", px=max(1, int(seconds * 1000)))
                await tx.execute()

    async def _sign_in(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        user = str(form.get("user") or form.get("agent_id") or "")[:64]
        address = request.remote or "?"
        limits = self._limits
        usual = bool(await self._redis.exists(self._keys.sign_in_known(user, address)))
        counters = {f"pair:{user}@{address}": limits.pair_free, f"addr:{address}": limits.per_address}
        if not usual:
            counters[f"user:{user}"] = limits.per_user
        wait, known = await self._must_wait([self._keys.sign_in_wait(who) for who in counters])
        if wait:
            seconds = max(1, math.ceil(wait))
            if not known:
                log.warning("sign-in refused: too many failures", user=user[:32], retry_after_s=seconds)
            return web.Response(status=429, text=f"too many refused sign-ins; try again in {seconds} s\n",
                                headers={"Retry-After": str(seconds)})
        signed = await self._sessions.sign_in(user, str(form.get("secret", ""))[:256])
        if signed is None:
            await self._refused(counters)
            log.warning("sign-in refused", user=user[:32])
            return web.Response(status=403, text="wrong id or secret\n")
        async with self._redis.pipeline(transaction=False) as tx:
            tx.delete(self._keys.sign_in_failures(f"pair:{user}@{address}"))
            tx.set(self._keys.sign_in_known(user, address), "1", ex=limits.known_for_s)
            await tx.execute()
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
