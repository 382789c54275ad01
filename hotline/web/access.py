"""Sign-in and the role check, once for every page and API (aiohttp middleware).

Rules map a path prefix to the roles allowed there; a page asked for without a session sends
the browser to the sign-in form, an API or event stream answers 401, a signed-in person of
another role 403. A form posted from another origin is refused (cross-site request forgery),
and the session cookie is SameSite=Strict and HttpOnly.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from importlib import resources
from urllib.parse import quote, urlsplit

import structlog
from aiohttp import web
from aiohttp.typedefs import Middleware
from redis.exceptions import RedisError

from hotline.web.auth import COOKIE, SESSION_TTL_S, Principal, Sessions

log = structlog.get_logger("web.access")

Rule = tuple[str, frozenset[str]]
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
        return await handler(request)

    return check


class SignIn:
    """GET /login (the form), POST /login (and the agent page's /agent/login), POST /logout."""

    def __init__(self, sessions: Sessions, secure_cookie: bool = False):
        self._sessions = sessions
        self._secure = secure_cookie
        self._page = resources.files("hotline.web").joinpath("login.html").read_text(encoding="utf-8")

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/login", self._form), web.post("/login", self._sign_in),
                web.post("/agent/login", self._sign_in), web.post("/logout", self._sign_out),
                web.post("/agent/logout", self._sign_out)]

    async def _form(self, request: web.Request) -> web.StreamResponse:
        target = _safe_next(request.query.get("next", ""), "")
        return web.Response(text=self._page.replace("@@NEXT@@", quote(target, safe="/?=&")),
                            content_type="text/html")

    async def _sign_in(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        user = str(form.get("user") or form.get("agent_id") or "")[:64]
        signed = await self._sessions.sign_in(user, str(form.get("secret", ""))[:256])
        if signed is None:
            log.warning("sign-in refused", user=user[:32])
            return web.Response(status=403, text="wrong id or secret\n")
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
