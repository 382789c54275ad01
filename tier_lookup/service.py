"""The call-path lookup: normalise, one Redis round trip within a time budget, resolve. Never raises."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import structlog
from redis.exceptions import RedisError

from hotline_core.numbers import DEFAULT_PLAN, NumberPlan, normalize_number
from hotline_core.policy import Policy
from hotline_core.redispipe import ReplyError
from tier_lookup.identity import Identity, IdentityResolver
from tier_lookup.reader import RowSource

log = structlog.get_logger("tier_lookup")


def utc_now() -> datetime:
    return datetime.now(UTC)


class TierLookup:
    def __init__(
        self,
        store: RowSource,
        policy: Policy,
        budget_s: float,
        plan: NumberPlan = DEFAULT_PLAN,
        clock: Callable[[], datetime] = utc_now,
    ):
        self.store = store
        self.policy = policy
        self._resolver = IdentityResolver(policy)
        self.budget_s = budget_s
        self.plan = plan
        self._clock = clock

    def now(self) -> datetime:
        return self._clock()

    async def identify(self, caller: str, at: datetime | None = None) -> Identity:
        """The caller's identity. If Redis is slow or down the caller is `normal` with `degraded`
        set: a lookup must never hold a caller in silence or fail the call."""
        when = at or self._clock()
        number = normalize_number(caller, self.plan)
        resolve = self._resolver.resolve
        if number is None:
            return resolve(None, {}, when)
        try:
            # The row source bounds its own wait by the budget (the call path's Redis pipe fails
            # a command after it without a timer per call); see hotline_core.redispipe.
            rows = await self.store.lookup_rows(number)
        except TimeoutError:
            log.warning("tier lookup timed out; caller served as normal", caller=number,
                        budget_ms=round(self.budget_s * 1000))
            return resolve(number, {}, when, degraded=True)
        except (RedisError, ReplyError, OSError, ValueError, IndexError) as exc:
            log.warning("tier lookup failed; caller served as normal", caller=number,
                        error=f"{type(exc).__name__}: {exc}")
            return resolve(number, {}, when, degraded=True)
        return resolve(number, rows, when)
