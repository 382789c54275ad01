"""The supervisors' live board (`/board`, server-sent events), the Prometheus endpoint
(`/metrics`, bearer token) and the health checks for load balancers (`/healthz`, `/readyz`)."""

from __future__ import annotations

import asyncio
import hmac
import json
from collections.abc import Awaitable, Callable, Iterable
from importlib import resources

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from hotline.monitor.collector import LiveCollector
from hotline.monitor.service import Monitor
from hotline.web.access import principal_of
from hotline_core.metrics import Metrics

KEEPALIVE_S = 5.0


class Board:
    def __init__(self, monitor: Monitor, metrics: Metrics, metrics_token: str, multiprocess_dir: str | None,
                 ready: Callable[[], Awaitable[list[str]]], streams_per_person: int):
        self._monitor = monitor
        self._metrics = metrics
        self._token = metrics_token
        self._multiprocess_dir = multiprocess_dir
        self._ready = ready  # what is not ready yet (empty: ready)
        self._page = resources.files("hotline.monitor").joinpath("board.html").read_text(encoding="utf-8")
        self._streams: dict[str, int] = {}  # open boards per person
        self._streams_per_person = streams_per_person

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/board", self._board), web.get("/board/events", self._events),
                web.get("/board/state", self._state), web.get("/metrics", self._scrape),
                web.get("/healthz", self._healthz), web.get("/readyz", self._readyz)]

    async def _board(self, request: web.Request) -> web.StreamResponse:
        return web.Response(text=self._page, content_type="text/html")

    async def _state(self, request: web.Request) -> web.StreamResponse:
        snapshot = self._monitor.snapshot or await self._monitor.refresh()
        return web.json_response(snapshot.to_json(), dumps=lambda o: json.dumps(o, ensure_ascii=False))

    async def _events(self, request: web.Request) -> web.StreamResponse:
        principal = principal_of(request)
        who = principal.user if principal else ""
        if self._streams.get(who, 0) >= self._streams_per_person:
            return web.Response(status=429, text=f"at most {self._streams_per_person} open boards per person; "
                                "close one\n")
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        updates = self._monitor.subscribe()
        self._streams[who] = self._streams.get(who, 0) + 1
        try:
            while True:
                try:
                    snapshot = await asyncio.wait_for(updates.get(), KEEPALIVE_S)
                except TimeoutError:
                    await response.write(b": keep-alive\n\n")
                    continue
                data = json.dumps(snapshot.to_json(), ensure_ascii=False)
                await response.write(f"data: {data}\n\n".encode())
        except (ConnectionResetError, asyncio.CancelledError):
            pass  # the supervisor closed the page
        finally:
            self._monitor.unsubscribe(updates)
            self._streams[who] -= 1
            if not self._streams[who]:
                del self._streams[who]
        return response

    async def _scrape(self, request: web.Request) -> web.StreamResponse:
        if not self._token:
            return web.Response(status=404, text="metrics are off: set metrics_token (HOTLINE_METRICS_TOKEN)\n")
        given = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if not hmac.compare_digest(given.encode(), self._token.encode()):
            return web.Response(status=401, text="bearer token required\n")
        registry = CollectorRegistry()
        if self._multiprocess_dir:
            # Every worker's counters, summed (the constructor registers itself; untyped upstream).
            MultiProcessCollector(registry, path=self._multiprocess_dir)  # type: ignore[no-untyped-call]
        else:
            registry.register(_Counted(self._metrics))
        registry.register(LiveCollector(self._monitor))
        body = await asyncio.to_thread(generate_latest, registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _healthz(self, request: web.Request) -> web.StreamResponse:
        return web.Response(text="alive\n")

    async def _readyz(self, request: web.Request) -> web.StreamResponse:
        missing = await self._ready()
        if missing:
            return web.Response(status=503, text="not ready: " + "; ".join(missing) + "\n")
        return web.Response(text="ready\n")


class _Counted(Collector):
    """This process's own counters (one worker: no files to sum)."""

    def __init__(self, metrics: Metrics):
        self._metrics = metrics

    def collect(self) -> Iterable[Metric]:
        return self._metrics.registry.collect()
