"""The live picture, kept current: rebuilt within a moment of each queue event the AMI bridge
sees (and every second regardless, for waits that grow), with the slower figures (today's
counts, tier table ages, dead letters, reachability) refreshed on their own intervals. Pages
subscribe to it; the scrape-time gauges read its last snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

import structlog

from ami_bridge.model import QueueModel
from ami_bridge.seating import DeskOf
from hotline.monitor.alarms import AlarmBook, Conditions
from hotline.monitor.snapshot import Snapshot, build_snapshot
from hotline_core.metrics import Metrics
from hotline_core.policy import Policy

log = structlog.get_logger("monitor")

T = TypeVar("T")
TodayFigures = Callable[[], Awaitable[Mapping[str, Mapping[str, Any]]]]


class Cached(Generic[T]):
    """A slow figure, read at most every `every_s`; its last good value stands in while the
    source is away (and `fresh` says so)."""

    def __init__(self, read: Callable[[], Awaitable[T]], every_s: float, initial: T):
        self._read = read
        self._every = every_s
        self.value = initial
        self.fresh = False
        self._at = float("-inf")

    async def get(self) -> T:
        if time.monotonic() - self._at >= self._every:
            self._at = time.monotonic()
            try:
                self.value, self.fresh = await asyncio.wait_for(self._read(), timeout=max(1.0, self._every / 2)), True
            except Exception as exc:  # any source may fail; its last value stands in
                self.fresh = False
                log.debug("monitor source unavailable", error=f"{type(exc).__name__}: {exc}")
        return self.value


@dataclass
class Sources:
    model: QueueModel
    changed: asyncio.Event
    desks: Callable[[], Awaitable[DeskOf]]
    today: TodayFigures | None
    tables: Callable[[], Awaitable[Mapping[str, datetime | None]]]
    sms_dead: Callable[[], Awaitable[int]]
    sms_added: Callable[[], Awaitable[int]]  # SMS jobs ever queued (every instance's)
    outbox: Callable[[], Awaitable[int]]  # call facts waiting for the records database
    redis_up: Callable[[], Awaitable[bool]]
    postgres_up: Callable[[], Awaitable[bool]] | None
    ami_up: Callable[[], bool | None]
    components_down: Callable[[], list[tuple[str, str]]] = lambda: []  # background components not running
    desk_shares: Callable[[], Mapping[str, tuple[int, float]]] = lambda: {}  # desk -> (seated, share qualified)


class Monitor:
    def __init__(self, policy: Policy, sources: Sources, metrics: Metrics, clock: Callable[[], datetime]):
        self._policy = policy
        self._sources = sources
        self._metrics = metrics
        self._clock = clock
        self._book = AlarmBook(policy)
        today = sources.today
        self.today: Cached[Mapping[str, Mapping[str, Any]] | None] = Cached(
            today if today is not None else _nothing, 5.0, None)
        self.tables: Cached[Mapping[str, datetime | None]] = Cached(sources.tables, 30.0, {})
        self.sms_dead = Cached(sources.sms_dead, 10.0, 0)
        self.sms_added = Cached(sources.sms_added, 10.0, 0)
        self.outbox = Cached(sources.outbox, 10.0, 0)
        self.redis_up = Cached(sources.redis_up, 2.0, False)
        postgres = sources.postgres_up
        self.postgres_up: Cached[bool] | None = Cached(postgres, 5.0, False) if postgres is not None else None
        self.snapshot: Snapshot | None = None
        self._subscribers: set[asyncio.Queue[Snapshot]] = set()

    async def refresh(self) -> Snapshot:
        now = self._clock()
        today = await self.today.get()
        await self.redis_up.get()
        if self.postgres_up is not None:
            await self.postgres_up.get()
        counted = self._metrics.totals("hotline_call_entries_total", "hotline_degraded_lookups_total")
        conditions = Conditions(
            service_level_today={lv: fig.get("service_level") for lv, fig in (today or {}).items()},
            table_imported_at=await self.tables.get(), ami_up=self._sources.ami_up(),
            sms_dead=await self.sms_dead.get(), sms_added=await self.sms_added.get(), outbox=await self.outbox.get(),
            components_down=tuple(self._sources.components_down()),
            desk_shares=tuple((desk, seated, share)
                              for desk, (seated, share) in sorted(self._sources.desk_shares().items())),
            entries=int(counted["hotline_call_entries_total"]),
            degraded=int(counted["hotline_degraded_lookups_total"]))
        alarms = self._book.update(conditions, now)
        snapshot = build_snapshot(self._policy, self._sources.model, await self._sources.desks(), today, alarms,
                                  conditions.ami_up, now)
        self.snapshot = snapshot
        for queue in self._subscribers:
            if queue.full():
                queue.get_nowait()  # a slow page gets the newest picture, not a backlog
            queue.put_nowait(snapshot)
        return snapshot

    async def run(self) -> None:
        changed = self._sources.changed
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), timeout=1.0)
            changed.clear()
            await asyncio.sleep(0.05)  # one picture for a burst of events
            try:
                await self.refresh()
            except asyncio.CancelledError:
                raise
            except Exception:  # the board must outlive any one bad source
                log.exception("monitor refresh failed")
                await asyncio.sleep(1.0)

    def subscribe(self) -> asyncio.Queue[Snapshot]:
        queue: asyncio.Queue[Snapshot] = asyncio.Queue(maxsize=1)
        if self.snapshot is not None:
            queue.put_nowait(self.snapshot)
        self._subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[Snapshot]) -> None:
        self._subscribers.discard(queue)


async def _nothing() -> Mapping[str, Mapping[str, Any]] | None:
    return None
