"""The agent's screen: who is calling, pushed the moment the call is connected.

An agent signs in with an agent id and a secret; the page keeps a server-sent-events stream
open. When AMI says a call was connected to that agent (AgentConnect), the call's identity (the
special-customer field, brand, level, masked number, the personal greeting, the IVR path) is
published on the agent's Redis channel, so whichever `hotline serve` holds the agent's stream
delivers it; AgentComplete clears it. Each agent sees only their own calls.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from importlib import resources
from typing import Any

import structlog
from aiohttp import web
from redis.asyncio import Redis
from redis.exceptions import RedisError

from agi.records import CallRecord, CallRecords
from ami_bridge.roster import Roster
from hotline.web.auth import COOKIE, Sessions
from hotline_core.keys import RedisKeys
from hotline_core.loops import subscription
from hotline_core.numbers import mask_number

log = structlog.get_logger("screen")

SCREEN_EVENTS = frozenset({"AgentConnect", "AgentComplete"})
KEEPALIVE_S = 5.0  # a comment line this often keeps proxies open and finds browsers that left
AFTER_CALL_S = 900  # how long after the call the agent may still file for (and see the orders of) its caller


def screen_card(record: CallRecord, agent_id: str) -> dict[str, Any]:
    """What the agent's screen shows for a connected call (pure)."""
    identity = record.identity
    return {
        "type": "call",
        "agent": agent_id,
        "uniqueid": record.uniqueid,
        "special_customer": identity.get("label", ""),
        "tier": identity.get("tier", ""),
        "brand": identity.get("brand_label", ""),
        "level": identity.get("level_label", ""),
        "number": mask_number(str(identity.get("number") or "")) if identity.get("number") else "(withheld)",
        "greeting": identity.get("greeting", ""),
        "ivr_path": record.notes.get("ivr_path", "").replace("hotline:", ""),
    }


class Screens:
    def __init__(self, redis: Redis, prefix: str, records: CallRecords, sessions: Sessions,
                 streams_per_person: int):
        self._redis = redis
        self._sessions = sessions
        self._keys = RedisKeys(prefix)
        self._roster = Roster(redis, prefix)
        self._records = records
        self._page_html = resources.files("hotline.web").joinpath("agent.html").read_text(encoding="utf-8")
        self._pages: dict[str, set[asyncio.Queue[str]]] = {}  # agent -> the open pages' queues
        self._streams_per_person = streams_per_person  # tabs and devices of one agent at once

    async def on_event(self, event: Mapping[str, Any]) -> None:
        """AMI listener: push a card on AgentConnect, clear it on AgentComplete."""
        name = event.get("Event")
        if name not in SCREEN_EVENTS:
            return
        interface = str(event.get("Interface", ""))
        agent = next((a.agent_id for a in await self._roster.all() if a.interface == interface), None)
        if agent is None:
            return
        uniqueid = str(event.get("Uniqueid", ""))
        if name == "AgentComplete":
            await self._redis.publish(self._keys.screen_channel(agent),
                                      json.dumps({"type": "clear", "uniqueid": uniqueid}))
            # The caller stays open to the agent a while to file a complaint after the call, not
            # for the day: the agent's access to a caller's orders ends with the work on the call.
            if await self._redis.get(self._keys.screen_call(agent)) == uniqueid:
                await self._redis.expire(self._keys.screen_call(agent), AFTER_CALL_S)
            return
        record = await self._records.get(uniqueid)
        if record is None:
            return
        # The caller on this agent's screen: their history and complaint form are open to the agent.
        await self._redis.set(self._keys.screen_call(agent), uniqueid, ex=86400)
        card = screen_card(record, agent)
        await self._redis.publish(self._keys.screen_channel(agent), json.dumps(card, ensure_ascii=False))

    def routes(self) -> list[web.RouteDef]:
        # Signing in and out: hotline.web.access (shared by every page).
        return [web.get("/agent", self._page), web.get("/agent/events", self._events)]

    async def _page(self, request: web.Request) -> web.StreamResponse:
        agent = await self._sessions.agent_of(request.cookies.get(COOKIE, ""))
        return web.Response(text=self._page_html.replace("@@AGENT@@", agent or ""), content_type="text/html")

    async def fan_out(self) -> None:
        """One subscription for every screen this instance holds (thousands of agents cost one
        Redis connection, not one each, and none from the pool the call and SMS paths use);
        each card goes to the open pages of its agent. Reconnects when Redis comes back."""
        stem = self._keys.screen_channel("")
        while True:
            try:
                async with self._redis.pubsub() as pubsub:
                    await pubsub.psubscribe(stem + "*")
                    async for message in subscription(pubsub):
                        if message.get("type") != "pmessage":
                            continue
                        agent = str(message["channel"])[len(stem):]
                        for page in self._pages.get(agent, ()):
                            if page.full():
                                page.get_nowait()  # a page that cannot keep up gets the newest card
                            page.put_nowait(str(message["data"]))
            except (RedisError, OSError) as exc:
                log.warning("screen channel lost; retrying", error=str(exc))
                await asyncio.sleep(1.0)

    async def _events(self, request: web.Request) -> web.StreamResponse:
        agent = await self._sessions.agent_of(request.cookies.get(COOKIE, ""))
        if agent is None:
            return web.Response(status=401, text="sign in first\n")
        if len(self._pages.get(agent, ())) >= self._streams_per_person:
            return web.Response(status=429, text=f"at most {self._streams_per_person} open screens per agent; "
                                "close one\n")
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        page: asyncio.Queue[str] = asyncio.Queue(maxsize=16)
        self._pages.setdefault(agent, set()).add(page)
        try:
            await response.write(b": signed in\n\n")
            while True:
                try:
                    card = await asyncio.wait_for(page.get(), KEEPALIVE_S)
                except TimeoutError:
                    await response.write(b": keep-alive\n\n")  # also notices a browser that went away
                    continue
                await response.write(f"data: {card}\n\n".encode())
        except ConnectionResetError:
            pass  # the agent closed the page: an ordinary end, not a failure to log
        finally:
            pages = self._pages.get(agent, set())
            pages.discard(page)
            if not pages:
                self._pages.pop(agent, None)
        return response
