"""Background upkeep that must outlive its own failures: run a piece of work every so often,
say once per failure why it did not happen, and try again next round; listen to a Redis
subscription in a way that a stop always ends; and bridge a callback API and tasks both ways."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import structlog
from redis.asyncio.client import PubSub


async def every(interval_s: float, work: Callable[[], Awaitable[None]], what: str, first_s: float = 0.0) -> None:
    """Forever: `work()`, then wait `interval_s`. A failure is logged (a database or Redis away)
    and the next round comes all the same; cancellation ends it."""
    log = structlog.get_logger("upkeep")
    await asyncio.sleep(first_s)
    while True:
        try:
            await work()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # any failure: the next round retries, the service goes on
            log.warning(f"{what} failed; will retry", error=f"{type(exc).__name__}: {exc}")
        await asyncio.sleep(interval_s)


async def keep_stepping(step: Callable[[], Awaitable[int]], failing: str, recovered: str, idle_s: float = 0.0,
                        retry_s: float = 2.0, **context: object) -> None:
    """Forever: `step()` (it returns how much it did; nothing: wait `idle_s`). While it fails the
    failure is said once, not once per retry, and its end once; cancellation ends it."""
    log = structlog.get_logger("upkeep")
    trouble = ""
    while True:
        try:
            done = await step()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # any failure: what it works on stays where it is, and we retry
            if str(exc) != trouble:
                log.warning(failing, error=f"{type(exc).__name__}: {exc}", **context)
                trouble = str(exc)
            await asyncio.sleep(retry_s)
            continue
        if trouble:
            log.info(recovered, **context)
            trouble = ""
        if not done and idle_s:
            await asyncio.sleep(idle_s)


async def subscription(pubsub: PubSub, poll_s: float = 1.0) -> AsyncIterator[dict[str, Any]]:
    """The messages of a subscription (subscribe confirmations included), for ever. Each wait
    is bounded, and the task's own cancel request is checked after it: redis-py (8.1) can
    swallow a cancellation that lands inside its read (`listen()` then waits for ever), and a
    listener that never ends keeps `hotline serve` from stopping."""
    task = asyncio.current_task()
    while True:
        message = await pubsub.get_message(timeout=poll_s)
        if task is not None and task.cancelling():
            raise asyncio.CancelledError("stopped while a Redis read swallowed the cancellation")
        if message is not None:
            yield message


def handed() -> tuple[asyncio.Future[Any], Callable[[Any], None]]:
    """A future and a callback that sets it to whatever it is handed, exception objects
    included, so a task can await a callback API (the call path's, which hands replies or
    failures to a function). A call after the awaiting task was cancelled is ignored."""
    future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    def hand(value: Any) -> None:
        if not future.done():
            future.set_result(value)

    return future, hand


def settled() -> tuple[asyncio.Future[Any], Callable[[Any], None]]:
    """`handed`, but an exception handed over is raised by the future rather than returned (for
    callers that await a reply and let its failure propagate)."""
    future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    def settle(outcome: Any) -> None:
        if future.done():  # its awaiter was cancelled
            return
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)

    return future, settle


def hand_over(handler: Callable[[Any], None], task: asyncio.Future[Any]) -> None:
    """A finished task's outcome to a callback API's handler (as its done callback): the result,
    the exception it raised, or TimeoutError if it was cancelled before it could answer."""
    handler(TimeoutError("cancelled before it answered") if task.cancelled() else task.exception() or task.result())
