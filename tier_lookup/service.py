"""The call-path lookup: normalise, one Redis round trip within a time budget, resolve. Never raises."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, NamedTuple

import structlog

from hotline_core.numbers import DEFAULT_PLAN, NumberPlan, normalize_number
from hotline_core.policy import Policy
from tier_lookup.identity import Identity, IdentityResolver
from tier_lookup.reader import RowSource, decode_lookup

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

    def begin(self, caller: str, at: datetime | None = None) -> PendingLookup:
        """Start a lookup without waiting for it: the returned lookup's `reply` (None when there
        is nothing to ask, e.g. no valid number) completes when Redis answers or the budget runs
        out; `finish` then gives the identity. For call entry, which waits on callbacks."""
        number = normalize_number(caller, self.plan)
        reply = self.store.lookup_soon(number) if number is not None else None
        return PendingLookup(number, at or self._clock(), reply, time.perf_counter())

    def finish(self, pending: PendingLookup) -> Identity:
        """The identity of a begun lookup whose reply has completed. If Redis was slow or down the
        caller is `normal` with `degraded` set: a lookup never holds a caller in silence or fails
        the call."""
        number, when, reply = pending.number, pending.at, pending.reply
        resolve = self._resolver.resolve
        if reply is None:
            return resolve(number, {}, when)
        error = reply.exception() if not reply.cancelled() else TimeoutError("lookup cancelled")
        if error is None:
            try:
                return resolve(number, decode_lookup(reply.result()), when)
            except (ValueError, IndexError, AttributeError, TypeError) as exc:  # a reply not shaped as the script's
                error = exc
        if isinstance(error, TimeoutError):
            # The row source bounds its own wait by the budget (the call path's Redis pipe fails
            # a command after it without a timer per call); see hotline_core.redispipe.
            log.warning("tier lookup timed out; caller served as normal", caller=number,
                        budget_ms=round(self.budget_s * 1000))
        else:
            log.warning("tier lookup failed; caller served as normal", caller=number,
                        error=f"{type(error).__name__}: {error}")
        return resolve(number, {}, when, degraded=True)

    async def identify(self, caller: str, at: datetime | None = None) -> Identity:
        """The caller's identity (see `finish`). Never raises."""
        pending = self.begin(caller, at)
        if pending.reply is not None:
            await asyncio.wait([pending.reply])  # its outcome, failure included, is read by finish
        return self.finish(pending)


class PendingLookup(NamedTuple):
    """A lookup begun (a tuple: one is made at every call entry, and a frozen dataclass costs
    four times as much to make)."""

    number: str | None  # normalised; None: not a number we can look up
    at: datetime
    reply: asyncio.Future[Any] | None  # the lookup script's flat reply
    started: float  # perf_counter at the start

    @property
    def elapsed_s(self) -> float:
        return time.perf_counter() - self.started
