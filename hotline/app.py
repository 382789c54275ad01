"""The composition root: every long-lived resource is opened here and handed to what needs it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from redis.asyncio import Redis

from hotline.numbers import NumberPlan
from hotline.policy import Policy, load_policy
from hotline.settings import Settings
from tier_lookup.service import TierLookup
from tier_lookup.store import TierStore


@dataclass(frozen=True, slots=True)
class Services:
    settings: Settings
    policy: Policy
    redis: Redis
    store: TierStore
    lookup: TierLookup


def redis_client(settings: Settings) -> Redis:
    budget = settings.lookup_budget_ms / 1000
    # Connect quickly or not at all: a caller is waiting. Bulk commands (imports) may take
    # longer than the lookup budget, so no socket read timeout is set here; the call path
    # bounds its own waits.
    return Redis.from_url(
        settings.redis_url,
        decode_responses=True,
        socket_connect_timeout=max(budget, 0.5),
        health_check_interval=30,
    )


@asynccontextmanager
async def open_services(settings: Settings, policy: Policy | None = None) -> AsyncIterator[Services]:
    policy = policy or load_policy(settings.policy_file)
    redis = redis_client(settings)
    try:
        store = TierStore(redis, settings.redis_prefix)
        lookup = TierLookup(
            store,
            policy,
            budget_s=settings.lookup_budget_ms / 1000,
            plan=NumberPlan(settings.country_code, settings.region),
        )
        yield Services(settings, policy, redis, store, lookup)
    finally:
        await redis.aclose()
