"""One FastAGI connection: an asyncio Protocol feeding the pure parser, and the awaitable
session a route talks through. The protocol only moves bytes; the parser decides what they mean.

A Protocol rather than streams because each call entry is a few small reads and one write:
the stream machinery (and a timeout per read) cost more than the work itself.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, cast

from agi.protocol import (
    NEED_DATA,
    AgiError,
    AgiParser,
    Closed,
    CommandFailed,
    Environment,
    Event,
    Hangup,
    Response,
    Trying,
    format_command,
)


class ChannelGone(Exception):
    """The peer closed the connection or the channel is dead; stop talking to it."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class IdleTimeout(Exception):
    def __init__(self, seconds: float, waiting_for: str):
        super().__init__(f"no data for {seconds:g} s while waiting for {waiting_for}")
        self.waiting_for = waiting_for


class AgiSession(asyncio.Protocol):
    """Created per connection by the server; `handler` runs once with the session."""

    def __init__(self, handler: Callable[[AgiSession], Coroutine[Any, Any, None]], idle_timeout: float,
                 environment_deadline: float = 5.0):
        self._handler = handler
        self._idle = idle_timeout
        # The whole environment block within this of connecting: a peer that drips a byte at a
        # time keeps the idle timer happy but must not keep its slot.
        self._env_deadline = environment_deadline
        self.parser = AgiParser()
        self._events: deque[Event] = deque()
        self._failure: AgiError | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._transport: asyncio.Transport | None = None
        self._idled = False
        self._eof_seen = False
        self._loop = asyncio.get_running_loop()
        self._last_data = self._loop.time()
        self._connected_at = self._last_data
        self._watchdog: asyncio.TimerHandle | None = None
        self.peer = "?"
        self.task: asyncio.Task[None] | None = None

    # -- transport side -------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if peer else "?"
        # One watchdog per connection instead of a timeout per read: reads are the hot path.
        self._connected_at = self._loop.time()
        self._watchdog = self._loop.call_later(min(self._idle, self._env_deadline), self._check_idle)
        self.task = self._loop.create_task(self._handler(self))

    def data_received(self, data: bytes) -> None:
        self._last_data = self._loop.time()
        self.parser.receive_data(data)
        self._pump()

    def eof_received(self) -> bool:
        self._end_of_stream()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self._end_of_stream()
        if self._watchdog is not None:
            self._watchdog.cancel()

    def _end_of_stream(self) -> None:
        if not self._eof_seen:
            self._eof_seen = True
            self.parser.receive_data(b"")
            self._pump()

    def _pump(self) -> None:
        try:
            while (event := self.parser.next_event()) is not NEED_DATA:
                self._events.append(event)
                if isinstance(event, Closed):
                    break
        except AgiError as exc:
            self._failure = exc
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _check_idle(self) -> None:
        now = self._loop.time()
        quiet = now - self._last_data
        late = self.parser.in_environment and now - self._connected_at >= self._env_deadline
        if quiet >= self._idle or late:
            self._idled = True
            if self._waiter is not None and not self._waiter.done():
                self._waiter.set_result(None)
            if self._transport is not None:
                self._transport.abort()
        else:
            wait = self._idle - quiet
            if self.parser.in_environment:
                wait = min(wait, self._env_deadline - (now - self._connected_at))
            self._watchdog = self._loop.call_later(wait, self._check_idle)

    # -- route side -----------------------------------------------------------------------
    @property
    def hung_up(self) -> bool:
        return self.parser.hung_up

    async def _event(self, waiting_for: str) -> Event:
        while not self._events:
            if self._failure is not None:
                raise self._failure
            if self._idled:
                raise IdleTimeout(self._idle, waiting_for)
            self._waiter = self._loop.create_future()
            await self._waiter
        return self._events.popleft()

    async def environment(self) -> Environment:
        event = await self._event("the environment block")
        if isinstance(event, Closed):
            raise ChannelGone("peer closed the connection in the middle of the environment block")
        assert isinstance(event, Environment)
        return event

    async def run(self, commands: Sequence[tuple[str, ...]]) -> list[Response | CommandFailed]:
        """Send commands one at a time and return their final replies in order.

        One at a time because Asterisk 22's res_agi reads a command only when the socket turns
        readable: commands written together stall after the first (measured; see the README).
        A dead channel (511) or a closed socket raises ChannelGone; 510 and 520 are returned."""
        return await self.run_lines([format_command(*command) for command in commands])

    async def run_lines(self, lines: Sequence[bytes]) -> list[Response | CommandFailed]:
        """`run` for commands already formatted (see `AgiParser.formatted`)."""
        replies: list[Response | CommandFailed] = []
        for line in lines:
            if self._transport is None:
                raise ChannelGone("connection lost before a command could be sent")
            self._transport.write(self.parser.formatted(line))
            replies.append(await self._reply())
        return replies

    async def _reply(self) -> Response | CommandFailed:
        while True:
            event = await self._event("a command reply")
            if isinstance(event, Trying | Hangup):
                continue  # the real reply follows; a hang-up shows up as 511 on what comes next
            if isinstance(event, Closed):
                raise ChannelGone(f"peer closed the connection while we waited for a {event.during}")
            if isinstance(event, CommandFailed) and event.dead_channel:
                raise ChannelGone("channel is dead (511)")
            assert isinstance(event, Response | CommandFailed)
            return event

    def close(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
        if self._transport is not None:
            self._transport.close()
