"""The tests' one way to wait for something to come true: ask again every so often, and fail
with what was awaited (and the last answer) when it does not come within the time given."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def until(check: Callable[[], Awaitable[T] | T], what: str, within: float = 10.0, every: float = 0.1) -> T:
    """The first true answer of `check()` (a plain or an async function), asked every `every` s."""
    deadline = time.monotonic() + within
    while True:
        answer = check()
        value: T = await answer if inspect.isawaitable(answer) else answer
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {within} s for {what} (last answer: {value!r})")
        await asyncio.sleep(every)


def until_sync(check: Callable[[], T], what: str, within: float = 10.0, every: float = 0.1) -> T:
    """`until` for code without an event loop (fixtures that start processes)."""
    deadline = time.monotonic() + within
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {within} s for {what} (last answer: {value!r})")
        time.sleep(every)
