"""One FastAGI connection: an asyncio Protocol feeding the pure parser, and the session a route
talks through. The protocol only moves bytes; the parser decides what they mean.

A Protocol rather than streams because each call entry is a few small reads and one write:
the stream machinery (and a timeout per read) cost more than the work itself. For the same
reason a route can talk to the session in two ways: awaiting replies from a task (`run`), or
sending a command with a function to call on its reply (`send`), which needs no task at all.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections import deque
from collections.abc import Callable, Sequence
from typing import Protocol, cast

import structlog

from agi.protocol import (
    NEED_DATA,
    AgiError,
    AgiParser,
    Closed,
    CommandFailed,
    Environment,
    Event,
    Hangup,
    RemoteProtocolError,
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
        self.seconds = seconds
        self.waiting_for = waiting_for


log = structlog.get_logger("agi.session")

Reply = Response | CommandFailed
# What ends a conversation: the peer gone, quiet too long, or breaking the protocol.
Ended = AgiError | ChannelGone | IdleTimeout
# What a command sent with `send` comes to: its final reply, or what ended the conversation.
ReplyHandler = Callable[[Reply | Ended], None]


class SessionHost(Protocol):
    """What a session asks of the server that accepted it."""

    def admit(self, session: AgiSession) -> bool:
        """A new connection: take it (and count it) or refuse it."""

    def begin(self, session: AgiSession, env: Environment) -> None:
        """The environment block has arrived: start the route."""

    def release(self, session: AgiSession) -> None:
        """An admitted connection has closed."""


def log_ended(error: BaseException, **fields: object) -> None:
    """The one line for a conversation that ended other than by the route finishing."""
    if isinstance(error, ChannelGone):
        log.warning("fastagi peer went away", reason=error.reason, **fields)
    elif isinstance(error, IdleTimeout):
        log.warning("fastagi peer idle; closing", waiting_for=error.waiting_for, idle_timeout_s=error.seconds,
                    **fields)
    elif isinstance(error, RemoteProtocolError):
        log.warning("fastagi peer broke the protocol; closing", error=str(error), **fields)
    elif isinstance(error, AgiError):
        log.error("fastagi protocol misuse (bug)", error=str(error), **fields)
    else:
        log.error("fastagi route failed", exc_info=error, **fields)


class AgiSession(asyncio.Protocol):
    """Created per connection by the server. Nothing runs for a connection until its whole
    environment block has arrived: then the host starts the route (a peer that never sends one
    costs no task)."""

    # One per connection, its attributes read at every event: slots make both cheaper.
    __slots__ = ("__weakref__", "_admitted", "_began", "_connected_at", "_env_deadline", "_eof_seen", "_events",
                 "_failure", "_host", "_idle", "_idled", "_last_data", "_loop", "_on_reply", "_transport", "_waiter",
                 "address", "parser", "peer")

    def __init__(self, host: SessionHost, idle_timeout: float, environment_deadline: float = 5.0):
        self._host = host
        self._idle = idle_timeout
        # The whole environment block within this of connecting: a peer that drips a byte at a
        # time keeps the idle timer happy but must not keep its slot.
        self._env_deadline = environment_deadline
        self.parser = AgiParser()
        self._events: deque[Event] = deque()
        self._failure: AgiError | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._on_reply: tuple[ReplyHandler, contextvars.Context] | None = None
        self._transport: asyncio.Transport | None = None
        self._idled = False
        self._eof_seen = False
        self._began = False  # the environment went to the host (or the connection ended before it)
        self._admitted = False
        self._loop = asyncio.get_running_loop()
        self._last_data = self._loop.time()
        self._connected_at = self._last_data
        self.peer = "?"
        self.address = "?"  # the peer's host alone (limits are per address)

    # -- transport side -------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        if peer:
            self.address = peer[0]
            self.peer = f"{peer[0]}:{peer[1]}"
        if not self._host.admit(self):
            self._began = True  # nothing more is said about a refused connection
            self.close()
            return
        self._admitted = True
        self._connected_at = self._loop.time()

    def data_received(self, data: bytes) -> None:
        self._last_data = self._loop.time()
        self.parser.receive_data(data)
        self._pump()

    def eof_received(self) -> bool:
        self._end_of_stream()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if self._transport is not None:  # not closed by us: a waiting route must hear of it
            self._transport = None
            self._end_of_stream()
        if self._admitted:
            self._admitted = False
            self._host.release(self)

    def _end_of_stream(self) -> None:
        if not self._eof_seen:
            self._eof_seen = True
            self.parser.receive_data(b"")
            self._pump()

    def _pump(self) -> None:
        try:
            while (event := self.parser.next_event()) is not NEED_DATA:
                if not self._began and event.__class__ is Environment:
                    self._began = True
                    self._host.begin(self, event)
                    continue
                self._events.append(event)
                if isinstance(event, Closed):
                    break
        except AgiError as exc:
            self._failure = exc
        if not self._began:
            # The connection ends before its environment did: no route to tell, so say it here.
            if self._failure is not None:
                self._end_early(self._failure)
            elif self._events:  # Closed
                self._end_early(ChannelGone("peer closed the connection in the middle of the environment block"))
            return
        self._wake()

    def _wake(self) -> None:
        if self._on_reply is not None:
            self._deliver()
        elif self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _end_early(self, error: Ended) -> None:
        self._began = True
        log_ended(error, peer=self.peer)
        self.close()

    def check_idle(self, now: float) -> None:
        """End the connection if it has been quiet for the idle timeout, or is still in its
        environment block past the deadline. The server calls this for every open session a few
        times per timeout (one timer for all rather than a timer per connection: connections are
        the hot path)."""
        if self._idled or self._transport is None:
            return
        late = now - self._connected_at >= self._env_deadline and self.parser.in_environment
        if late or now - self._last_data >= self._idle:
            self._idled = True
            if not self._began:
                self._end_early(IdleTimeout(self._idle, "the environment block"))
                return
            self._wake()
            if self._transport is not None:
                self._transport.abort()

    # -- route side: callbacks ------------------------------------------------------------
    def send(self, line: bytes, on_reply: ReplyHandler) -> None:
        """Send one command already formatted (see `AgiParser.formatted`); `on_reply` is called,
        in the caller's context, with its final reply or with what ended the conversation.
        Until it is called, replies go to it and not to `run`."""
        if self._transport is None:
            raise ChannelGone("connection lost before a command could be sent")
        self._transport.write(self.parser.formatted(line))
        self._on_reply = (on_reply, contextvars.copy_context())
        if self._events or self._failure is not None or self._idled:
            self._deliver()

    def _deliver(self) -> None:
        assert self._on_reply is not None
        outcome = self._next_outcome()
        if outcome is not None:
            handler, context = self._on_reply
            self._on_reply = None
            context.run(handler, outcome)

    def _next_outcome(self) -> Reply | Ended | None:
        """The next final reply, or what ends the wait for one; None: nothing yet."""
        while self._events:
            event = self._events.popleft()
            if isinstance(event, Trying | Hangup):
                continue  # the real reply follows; a hang-up shows up as 511 on what comes next
            if isinstance(event, Closed):
                return ChannelGone(f"peer closed the connection while we waited for a {event.during}")
            if isinstance(event, CommandFailed) and event.dead_channel:
                return ChannelGone("channel is dead (511)")
            assert isinstance(event, Response | CommandFailed)
            return event
        if self._failure is not None:
            return self._failure
        if self._idled:
            return IdleTimeout(self._idle, "a command reply")
        return None

    # -- route side: awaiting -------------------------------------------------------------
    @property
    def hung_up(self) -> bool:
        return self.parser.hung_up

    async def run(self, commands: Sequence[tuple[str, ...]]) -> list[Reply]:
        """Send commands one at a time and return their final replies in order.

        One at a time because Asterisk 22's res_agi reads a command only when the socket turns
        readable: commands written together stall after the first (measured; see docs/benchmarks.md).
        A dead channel (511) or a closed socket raises ChannelGone; 510 and 520 are returned."""
        return await self.run_lines([format_command(*command) for command in commands])

    async def run_lines(self, lines: Sequence[bytes]) -> list[Reply]:
        """`run` for commands already formatted (see `AgiParser.formatted`)."""
        replies: list[Reply] = []
        for line in lines:
            if self._transport is None:
                raise ChannelGone("connection lost before a command could be sent")
            self._transport.write(self.parser.formatted(line))
            replies.append(await self._reply())
        return replies

    async def _reply(self) -> Reply:
        while (outcome := self._next_outcome()) is None:
            self._waiter = self._loop.create_future()
            await self._waiter
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None
