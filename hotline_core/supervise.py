"""Background work that cannot vanish: every long-running loop of `hotline serve` runs under one
`Supervisor`, which owns its task, hears how it ends and starts it again.

A loop catches the failures its author expected (Redis away, a database restarting) and carries
on by itself; anything else ends it. Left alone, such an end shows only as "Task exception was
never retrieved" at exit while the service looks healthy: an AMI bridge that died this way stops
staffing the desks for good. Under the supervisor the end is logged once with its traceback and
the component's name, the loop starts again after a backoff that grows while it keeps failing,
a metric counts the restarts, and `down()` names it for `/readyz` until it has run a while. A
loop that keeps failing is said to be failing (once per episode) and retried at the slowest
pace, not spun. Stopping cancels every loop and waits a bounded time for them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal

import structlog

from hotline_core.metrics import Metrics

Work = Callable[[], Awaitable[None]]  # called afresh at each start
State = Literal["running", "restarting", "failing", "stopped"]
STOP_GRACE_S = 3.0  # how long a stopping component may take before it is left behind
log = structlog.get_logger("supervisor")


@dataclass(frozen=True, slots=True)
class Backoff:
    first_s: float = 1.0  # the wait before the first restart
    factor: float = 2.0  # each further failure in a row waits this much longer
    max_s: float = 60.0  # the slowest pace: a loop that keeps failing is retried this often
    healthy_after_s: float = 30.0  # a run this long ends the streak (the next failure waits first_s again)
    failing_after: int = 5  # failures in a row before the component is reported as failing

    def delay(self, streak: int) -> float:
        """The wait before restarting after the `streak`-th failure in a row (pure)."""
        return min(self.first_s * self.factor ** max(streak - 1, 0), self.max_s)


@dataclass(slots=True)
class Health:
    """What the supervisor knows of one component, for `/readyz`, the board and tests."""
    name: str
    state: State = "running"
    restarts: int = 0
    streak: int = 0  # failures in a row
    error: str = ""  # the last failure, "Type: message"
    started_at: float = 0.0  # monotonic time of the current run's start

    def describe(self) -> str:
        if self.state == "failing":
            return f"{self.name} failing ({self.streak} failures in a row; last: {self.error})"
        return f"{self.name} {self.state} ({self.error})" if self.error else f"{self.name} {self.state}"


@dataclass
class Supervisor:
    metrics: Metrics | None = None
    backoff: Backoff = field(default_factory=Backoff)
    clock: Callable[[], float] = time.monotonic
    _health: dict[str, Health] = field(default_factory=dict, init=False)
    _tasks: dict[str, asyncio.Task[None]] = field(default_factory=dict, init=False)

    def start(self, name: str, work: Work) -> None:
        """Run `work()` under supervision until `stop()`; `name` says what it is in logs and metrics."""
        if name in self._tasks:
            raise ValueError(f"a component named {name!r} is already supervised")
        self._health[name] = Health(name, started_at=self.clock())
        self._tasks[name] = asyncio.get_running_loop().create_task(self._keep(name, work), name=f"supervised {name}")
        if self.metrics is not None:
            self.metrics.component_up.labels(name).set(1)
            self.metrics.component_restarts.labels(name)  # exported at 0 from the start, not from the first failure

    def health(self) -> list[Health]:
        return list(self._health.values())

    def troubled(self) -> list[Health]:
        """The components not running now, or failing and not yet running long enough to count
        as recovered (empty: all well)."""
        now = self.clock()
        for h in self._health.values():
            if h.state == "failing" and h.started_at and now - h.started_at >= self.backoff.healthy_after_s:
                h.state, h.streak = "running", 0
                log.info("component running again", component=h.name, restarts=h.restarts)
        return [h for h in self._health.values() if h.state != "running"]

    def down(self) -> list[str]:
        """`troubled`, each described (for /readyz)."""
        return [h.describe() for h in self.troubled()]

    async def _keep(self, name: str, work: Work) -> None:
        health = self._health[name]
        me = asyncio.current_task()
        while True:
            # A failing component stays reported as such until a run lasts (see `down`).
            health.started_at = self.clock()
            if health.state != "failing":
                health.state = "running"
            try:
                await work()
                failure: BaseException = RuntimeError("returned; a supervised loop must run until stopped")
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # whatever the loop did not expect: the supervisor's whole job
                failure = exc
            if me is not None and me.cancelling():
                # A library swallowed our cancellation (redis-py can): a stop is still a stop.
                raise asyncio.CancelledError(f"{name} stopped")
            ran_s = self.clock() - health.started_at
            health.streak = 1 if ran_s >= self.backoff.healthy_after_s else health.streak + 1
            health.restarts += 1
            error = f"{type(failure).__name__}: {failure}"
            delay = self.backoff.delay(health.streak)
            # The traceback once per kind of failure in a streak; a repeat is a line, not a page.
            if health.streak == 1 or error != health.error:
                log.error("component failed; restarting", component=name, restart_in_s=delay, ran_s=round(ran_s, 3),
                          exc_info=failure)
            health.error = error
            if health.streak == self.backoff.failing_after:
                log.error("component keeps failing; retried at a slower pace", component=name,
                          failures=health.streak, retry_every_s=self.backoff.max_s, error=error)
            health.state = "failing" if health.streak >= self.backoff.failing_after else "restarting"
            if self.metrics is not None:
                self.metrics.component_restarts.labels(name).inc()
                self.metrics.component_up.labels(name).set(0)
            await asyncio.sleep(delay)
            if self.metrics is not None:
                self.metrics.component_up.labels(name).set(1)

    async def stop(self, grace_s: float) -> list[str]:
        """Cancel every component and wait up to `grace_s` for them to end; returns the names of
        those that did not (left behind rather than hang a stop a service manager would kill)."""
        tasks = dict(self._tasks)
        self._tasks.clear()
        for task in tasks.values():
            task.cancel()
        stuck: list[str] = []
        if tasks:
            _done, pending = await asyncio.wait(tasks.values(), timeout=grace_s)
            stuck = sorted(name for name, task in tasks.items() if task in pending)
            if stuck:
                log.warning("components still stopping; leaving them", components=stuck)
        for name in tasks:
            self._health[name].state = "stopped"
            if self.metrics is not None:
                self.metrics.component_up.labels(name).set(0)
        return stuck

    async def __aenter__(self) -> Supervisor:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop(STOP_GRACE_S)
