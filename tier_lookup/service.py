"""The call-path lookup: normalise, one Redis round trip within a time budget, resolve. Never raises."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, NamedTuple

import structlog

from hotline_core.loops import handed
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
        """A lookup about to be asked: the number normalised and the time noted (no I/O)."""
        return PendingLookup(normalize_number(caller, self.plan), at or self._clock(), time.perf_counter())

    def ask(self, pending: PendingLookup, then: Callable[[Any], None]) -> None:
        """Send a begun lookup; `then` is called with Redis's reply (or the exception it failed
        with, or None when there was nothing to ask: no valid number), perhaps before this
        returns. `finish` makes the identity of it. For call entry, which waits on callbacks."""
        if pending.number is None:
            then(None)
        else:
            self.store.lookup_then(pending.number, then)

    def finish(self, pending: PendingLookup, reply: Any) -> Identity:
        """The identity from a lookup's reply. If Redis was slow or down the caller is `normal`
        with `degraded` set: a lookup never holds a caller in silence or fails the call."""
        number, when = pending.number, pending.at
        resolve = self._resolver.resolve
        if reply is None:
            return resolve(number, {}, when)
        if not isinstance(reply, Exception):
            try:
                return resolve(number, decode_lookup(reply), when)
            except (ValueError, IndexError, AttributeError, TypeError) as exc:  # not shaped as the script's
                reply = exc
        if isinstance(reply, TimeoutError):
            # The row source bounds its own wait by the budget (the call path's Redis pipe fails
            # a command after it without a timer per call); see hotline_core.redispipe.
            log.warning("tier lookup timed out; caller served as normal", caller=number,
                        budget_ms=round(self.budget_s * 1000))
        else:
            log.warning("tier lookup failed; caller served as normal", caller=number,
                        error=f"{type(reply).__name__}: {reply}")
        return resolve(number, {}, when, degraded=True)

    async def identify(self, caller: str, at: datetime | None = None) -> Identity:
        """The caller's identity (see `finish`). Never raises."""
        pending = self.begin(caller, at)
        replied, hand = handed()
        self.ask(pending, hand)
        return self.finish(pending, await replied)


class PendingLookup(NamedTuple):
    """A lookup begun (a tuple: one is made at every call entry, and a frozen dataclass costs
    four times as much to make)."""

    number: str | None  # normalised; None: not a number we can look up
    at: datetime
    started: float  # perf_counter at the start

    @property
    def elapsed_s(self) -> float:
        return time.perf_counter() - self.started
