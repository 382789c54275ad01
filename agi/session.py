"""One FastAGI connection: moves bytes between the socket and the pure parser, nothing more."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from enum import Enum

from agi.protocol import (
    NEED_DATA,
    AgiParser,
    Closed,
    CommandFailed,
    Environment,
    Event,
    Hangup,
    Response,
    Trying,
)

READ_SIZE = 64 * 1024


class ChannelGone(Exception):
    """The peer closed the connection or the channel is dead; stop talking to it."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class IdleTimeout(Exception):
    def __init__(self, seconds: float, waiting_for: str):
        super().__init__(f"no data for {seconds:g} s while waiting for {waiting_for}")
        self.waiting_for = waiting_for


class AgiSession:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, idle_timeout: float):
        self._reader = reader
        self._writer = writer
        self._idle = idle_timeout
        self.parser = AgiParser()
        # One watchdog per connection instead of a timeout per read: reads are the hot path.
        self._loop = asyncio.get_running_loop()
        self._last_data = self._loop.time()
        self._idled = False
        self._watchdog = self._loop.call_later(idle_timeout, self._check_idle)

    def _check_idle(self) -> None:
        quiet = self._loop.time() - self._last_data
        if quiet >= self._idle:
            self._idled = True
            self._writer.transport.abort()  # the pending read then sees end of stream
        else:
            self._watchdog = self._loop.call_later(self._idle - quiet, self._check_idle)

    @property
    def hung_up(self) -> bool:
        return self.parser.hung_up

    async def _event(self, waiting_for: str) -> Event:
        while True:
            event = self.parser.next_event()
            if event is not NEED_DATA:
                assert not isinstance(event, Enum)
                return event
            try:
                data = await self._reader.read(READ_SIZE)
            except (ConnectionError, OSError):
                data = b""
            if self._idled:
                raise IdleTimeout(self._idle, waiting_for)
            self._last_data = self._loop.time()
            self.parser.receive_data(data)

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
        replies: list[Response | CommandFailed] = []
        for command in commands:
            self._writer.write(self.parser.command(*command))
            await self._drain()
            replies.append(await self._reply())
        return replies

    async def _drain(self) -> None:
        try:
            await self._writer.drain()
        except (ConnectionError, OSError):
            raise ChannelGone("connection lost while sending a command") from None

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

    async def close(self) -> None:
        self._watchdog.cancel()
        self._writer.close()
        with contextlib.suppress(TimeoutError, ConnectionError, OSError):
            await asyncio.wait_for(self._writer.wait_closed(), 1.0)
