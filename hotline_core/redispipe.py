"""A small pipelined Redis client for the call path.

redis-py spends ~75 µs of CPU per command on the event loop (pool checkout, argument
encoding, reply handling); at thousands of call entries a second that is most of the budget.
This client keeps one connection, packs commands with hiredis, writes every command issued in
the same loop iteration in one send, and matches replies to callers in order (Redis answers a
connection's commands in order). While commands are in flight, new ones wait for the next reply
to go out together (as TCP's Nagle waits for an acknowledgement): when Redis is idle a command
goes at once, under load a write carries many calls' commands instead of one or two. It is used
for the per-call lookup and call records only; bulk and admin work stays on redis-py.

Failures are the caller's to handle: a lost connection fails every command in flight with
ConnectionError and the next command reconnects.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, cast

import hiredis
from redis.connection import parse_url
from redis.exceptions import RedisError

from hotline_core.loops import hand_over, settled
from hotline_core.redis_errors import PipeError, ReplyError

# A Redis that accepts connections but never answers (stopped, swapping) must not make us
# queue futures without bound: past this many unanswered commands the connection is dropped.
MAX_IN_FLIGHT = 10_000


# Called with a command's reply, or with the exception it failed with (PipeError, TimeoutError,
# ReplyError): directly from the connection's reading, so no future, task or loop turn is spent
# on it (at every call entry, two commands each).
Handler = Callable[[Any], None]


class _Call:
    """One command waiting for its reply."""

    __slots__ = ("done", "handler", "sent_at")

    def __init__(self, handler: Handler, sent_at: float):
        self.handler = handler
        self.sent_at = sent_at
        self.done = False  # answered, or failed by the timeout sweep (its late reply is dropped)


class _Resp(asyncio.Protocol):
    # Its attributes are read at every command and reply: slots make that cheaper.
    __slots__ = ("_expired", "_interval", "_loop", "_on_lost", "_sweeping", "_timeout", "flush_scheduled", "in_flight",
                 "outgoing", "reader", "transport", "waiting")

    def __init__(self, on_lost: Any, reply_timeout_s: float):
        self.reader = hiredis.Reader(encoding="utf-8", errors="replace")
        self.waiting: deque[_Call] = deque()
        self.transport: asyncio.Transport | None = None
        self.outgoing: list[bytes] = []
        self.flush_scheduled = False
        self.in_flight = 0  # commands written whose reply has not come
        self._on_lost = on_lost
        self._loop = asyncio.get_running_loop()
        # Timeouts without a timer per command: a sweep every tenth of the budget fails the
        # commands that have waited too long, so each one fails within its budget.
        self._timeout = reply_timeout_s
        self._interval = reply_timeout_s / 10
        self._expired = 0  # leading entries of `waiting` the sweep has already failed
        self._sweeping = False

    def send(self, packed: bytes) -> asyncio.Future[Any]:
        """Queue one packed command; its reply arrives on the returned future."""
        future, settle = settled()
        self.send_to(packed, settle)
        return future

    def send_to(self, packed: bytes, handler: Handler) -> None:
        """Queue one packed command; everything queued in this loop iteration goes in one write."""
        if self.transport is None:
            raise PipeError("connection to Redis closed")
        if len(self.waiting) >= MAX_IN_FLIGHT:
            self.transport.abort()
            raise PipeError(f"{MAX_IN_FLIGHT} commands unanswered; Redis is not responding")
        self.waiting.append(_Call(handler, self._loop.time()))
        self.outgoing.append(packed)
        if not self.flush_scheduled and not self.in_flight:
            # With commands in flight, these go when a reply comes (see data_received): under
            # load, one write carries many calls' commands, and nothing waits when Redis is idle.
            self.flush_scheduled = True
            self._loop.call_soon(self._flush)
        if not self._sweeping:
            self._sweeping = True
            self._loop.call_later(self._interval, self._sweep)

    def _sweep(self) -> None:
        if self.outgoing and not self.flush_scheduled:
            # Held for a reply slower than a sweep's interval: waiting longer gains nothing.
            self._flush()
        limit = self._loop.time() - (self._timeout - self._interval)
        index = self._expired
        while index < len(self.waiting) and (call := self.waiting[index]).sent_at <= limit:
            if not call.done:
                self._answer(call, TimeoutError(f"no reply from Redis within {self._timeout * 1000:.0f} ms"))
            index += 1
        self._expired = index
        if len(self.waiting) > self._expired:
            self._loop.call_later(self._interval, self._sweep)
        else:
            self._sweeping = False

    def _flush(self) -> None:
        self.flush_scheduled = False
        if not self.outgoing:
            return
        self.in_flight += len(self.outgoing)
        data, self.outgoing = b"".join(self.outgoing), []
        if self.transport is not None:
            self.transport.write(data)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        while (reply := self.reader.gets()) is not False:
            self.in_flight -= 1
            if not self.waiting:
                continue  # a reply nobody waits for any more (its caller timed out)
            call = self.waiting.popleft()
            if self._expired:
                self._expired -= 1
            if call.done:
                continue
            if isinstance(reply, hiredis.ReplyError):
                self._answer(call, ReplyError(str(reply)))
                if str(reply).startswith("READONLY") and self.transport is not None:
                    # A former primary, now a replica (a failover happened): reconnect, which
                    # asks where the primary is now.
                    self.transport.abort()
            else:
                self._answer(call, reply)
        if self.outgoing and not self.flush_scheduled:
            # Commands held while others were in flight, and those the handlers just sent, go at
            # the end of this loop turn together with whatever else it sends.
            self.flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _answer(self, call: _Call, outcome: Any) -> None:
        call.done = True
        try:
            call.handler(outcome)
        except Exception as exc:  # a handler's bug must not stop the replies after it reaching theirs
            self._loop.call_exception_handler({"message": "Redis reply handler failed", "exception": exc})

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        error = PipeError(f"connection to Redis lost: {exc}" if exc else "connection to Redis closed")
        while self.waiting:
            call = self.waiting.popleft()
            if not call.done:
                self._answer(call, error)
        self._on_lost(self)


class RedisPipe:
    """`timeout_s` bounds the connect and every command: past it the command fails with
    TimeoutError (its late reply, if any, is discarded)."""

    def __init__(self, url: str, timeout_s: float,
                 locate: Callable[[], Awaitable[tuple[str, int]]] | None = None):
        """`locate`, when given, names the address to connect to at each (re)connect: with
        Sentinel, the current primary's (the url's host and port are then not used)."""
        self._locate = locate
        options = parse_url(url)  # type: ignore[no-untyped-call]
        self._host = options.get("host", "127.0.0.1")
        self._port = int(options.get("port", 6379))
        self._path = options.get("path")
        self._setup: list[tuple[str, ...]] = []
        if options.get("password"):
            user = options.get("username")
            self._setup.append(("AUTH", user, options["password"]) if user else ("AUTH", options["password"]))
        if options.get("db"):
            self._setup.append(("SELECT", str(options["db"])))
        self._timeout = timeout_s
        self._conn: _Resp | None = None
        self._connecting: asyncio.Future[_Resp] | None = None

    async def _connection(self) -> _Resp:
        if self._conn is not None and self._conn.transport is not None:
            return self._conn
        if self._connecting is None:
            # One connect for everyone waiting; the others share its outcome.
            self._connecting = asyncio.ensure_future(self._connect())
        try:
            return await asyncio.shield(self._connecting)
        finally:
            if self._connecting is not None and self._connecting.done():
                self._connecting = None

    async def _connect(self) -> _Resp:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self._timeout):
                if self._path:
                    _, proto = await loop.create_unix_connection(self._protocol, self._path)
                else:
                    host, port = await self._locate() if self._locate else (self._host, self._port)
                    _, proto = await loop.create_connection(self._protocol, host, port)
        except (OSError, TimeoutError, RedisError) as exc:  # RedisError: no sentinel knows a primary
            raise PipeError(f"cannot connect to Redis: {exc or 'timed out'}") from None
        for command in self._setup:
            await proto.send(pack_command(command))
        self._conn = proto
        return proto

    def _protocol(self) -> _Resp:
        return _Resp(self._lost, self._timeout)

    def _lost(self, proto: _Resp) -> None:
        if self._conn is proto:
            self._conn = None

    async def execute(self, *args: str | bytes) -> Any:
        conn = self._conn
        if conn is None or conn.transport is None:
            conn = await self._connection()
        return await conn.send(pack_command(args))

    def execute_nowait(self, *args: str | bytes) -> asyncio.Future[Any]:
        """Send a command without waiting for its reply; the returned future carries it."""
        future, settle = settled()
        self.execute_then(settle, *args)
        return future

    def execute_then(self, handler: Handler, *args: str | bytes) -> None:
        """Send a command; `handler` is called with its reply, or with the exception it failed
        with, from the connection's reading (see Handler). It may be called before this returns
        (the connection refused the command at once)."""
        conn = self._conn
        if conn is not None and conn.transport is not None:
            try:
                conn.send_to(pack_command(args), handler)
            except PipeError as exc:
                handler(exc)
            return
        # Not connected: connect (in a task, shared with other commands), then send.
        task = asyncio.ensure_future(self.execute(*args))
        task.add_done_callback(functools.partial(hand_over, handler))

    def eval_then(self, script: Script, handler: Handler, *args: str | bytes) -> None:
        """Run `script` (`args`: the key count, keys, then arguments) by its SHA1, and by its
        body when this Redis does not hold it (restarted, flushed, a replica just promoted):
        `handler` then gets the second reply. The body is sent only then, not with every call
        (three quarters of the bytes a call entry wrote to Redis, and the write's cost with
        them)."""

        def answered(outcome: Any) -> None:
            if isinstance(outcome, ReplyError) and str(outcome).startswith("NOSCRIPT"):
                self.execute_then(handler, "EVAL", script.body, *args)
            else:
                handler(outcome)

        self.execute_then(answered, "EVALSHA", script.sha, *args)

    def eval_nowait(self, script: Script, *args: str | bytes) -> asyncio.Future[Any]:
        """`eval_then` with the reply (or the failure) on the returned future."""
        future, settle = settled()
        self.eval_then(script, settle, *args)
        return future

    async def close(self) -> None:
        if self._conn is not None and self._conn.transport is not None:
            self._conn.transport.close()
        self._conn = None


class Script:
    """A Lua script and its SHA1, the name Redis knows it by once it has run it (see
    `RedisPipe.eval_then`)."""

    __slots__ = ("body", "sha")

    def __init__(self, body: str):
        self.body = body
        self.sha = hashlib.sha1(body.encode("utf-8"), usedforsecurity=False).hexdigest()


def pack_command(command: tuple[str | bytes, ...]) -> bytes:
    """One command in RESP wire form (hiredis packs it in C; shared with the bulk importer)."""
    packed: bytes = hiredis.pack_command(command)  # type: ignore[arg-type]
    return packed
