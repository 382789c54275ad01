"""The live board, `/metrics` and the health checks: what they read and the loop that keeps the
picture current."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from ami_bridge.bridge import AmiBridge
from ami_bridge.seating import Seating
from hotline.monitor.board import Board
from hotline.monitor.service import Monitor, Sources, TodayFigures
from hotline_core.feature import SUPERVISOR, Feature
from hotline_core.keys import RedisKeys
from hotline_core.metrics import Metrics
from hotline_core.policy import Policy
from hotline_core.settings import Settings
from tier_lookup.store import TierStore

BOARD_ACCESS = (("/board", SUPERVISOR),)  # /metrics checks its own token; health checks are open


def board_feature(settings: Settings, policy: Policy, redis: Redis, store: TierStore, metrics: Metrics,
                  now: Callable[[], datetime], bridge: AmiBridge, seating: Seating, today: TodayFigures | None,
                  postgres_up: Callable[[], Awaitable[bool]] | None, ready: Callable[[], Awaitable[list[str]]],
                  multiprocess_dir: str | None, components_down: Callable[[], list[tuple[str, str]]]) -> Feature:
    """`today` and `postgres_up` come from the records feature (None: no records database)."""
    keys = RedisKeys(settings.redis_prefix)

    async def tables() -> dict[str, datetime | None]:
        return {s.table: s.imported for s in await store.stats()}

    async def sms_dead() -> int:
        return int(await redis.xlen(keys.sms_dead))

    async def sms_added() -> int:
        try:
            info: Any = await redis.xinfo_stream(keys.sms_jobs)
        except ResponseError:  # no job queued yet: no stream
            return 0
        return int(info.get("entries-added", 0))  # Redis 7: every entry ever added, trimmed or not

    async def outbox() -> int:
        return int(await redis.xlen(keys.records_outbox))

    async def redis_up() -> bool:
        return bool(await redis.ping())

    ami_managed = bool(settings.ami_secret)
    sources = Sources(model=bridge.model, changed=bridge.model_changed, desks=seating, today=today, tables=tables,
                      sms_dead=sms_dead, sms_added=sms_added, outbox=outbox, redis_up=redis_up, postgres_up=postgres_up,
                      ami_up=lambda: bridge.connected.is_set() if ami_managed else None,
                      components_down=components_down, desk_shares=lambda: seating.shares)
    live = Monitor(policy, sources, metrics, now)
    board = Board(live, metrics, settings.metrics_token, multiprocess_dir, ready, settings.streams_per_person)
    return Feature("board", routes=board.routes(), access=BOARD_ACCESS, loops={"live board": live.run})
