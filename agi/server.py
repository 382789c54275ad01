"""The asyncio FastAGI server: accepts connections, and once a connection's environment has
arrived, starts the route it names.

Each connection is independent: whatever one peer sends (garbage, nothing, a megabyte line, an
early close) ends that connection with one log line and touches no other call.
"""

from __future__ import annotations

import asyncio
import contextvars
import socket
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any, Protocol

import structlog

from agi.protocol import Environment
from agi.session import AgiSession, log_ended
from hotline_core.logs import start_call_fields
from hotline_core.metrics import Metrics

log = structlog.get_logger("agi.server")

# A route gets the session and its environment. It either returns a coroutine, which the server
# runs in a task of its own and closes the session after, or returns None having started its
# work with the session's callbacks (then it closes the session itself): call entry does that,
# since a task and its wake-ups cost more than the entry's own work.
Route = Callable[[AgiSession, Environment], Coroutine[Any, Any, None] | None]


class _Listener(Protocol):
    """What the server uses of asyncio's Server. This module is compiled (setup.py), and compiled
    code checks the types it is told: uvloop's sockets are a list where typeshed says a tuple."""

    @property
    def sockets(self) -> Sequence[socket.socket]: ...

    def close(self) -> None: ...

    async def wait_closed(self) -> None: ...


class FastAgiServer:
    def __init__(self, routes: Mapping[str, Route], idle_timeout: float, max_connections: int = 4096,
                 metrics: Metrics | None = None, max_per_peer: int = 2048, environment_deadline: float = 5.0):
        self._routes = dict(routes)
        self._max_per_peer = max_per_peer
        self._env_deadline = environment_deadline
        self._per_peer: dict[str, int] = {}  # open sessions by peer address
        self._metrics = metrics or Metrics()
        self._idle = idle_timeout
        self._max = max_connections
        self._server: _Listener | None = None
        self._tasks: set[asyncio.Task[None]] = set()  # routes running in tasks (kept from the collector)
        self._sampling: asyncio.TimerHandle | None = None
        self._open: set[AgiSession] = set()  # admitted and not yet closed
        # Each session's timeouts are checked this often: a fraction of the shortest, so a
        # connection ends at most a quarter late.
        self._sweep_every = min(idle_timeout, environment_deadline) / 4
        self._sweeping: asyncio.TimerHandle | None = None
        self.handled = 0

    @property
    def active(self) -> int:
        return len(self._open)

    async def start(self, host: str, port: int, reuse_port: bool = False) -> tuple[str, int]:
        loop = asyncio.get_running_loop()
        # Declared, not inferred: mypy would narrow to asyncio.Server again, and its tuple.
        listener: _Listener = await loop.create_server(
            lambda: AgiSession(self, self._idle, self._env_deadline),
            host,
            port,
            backlog=1024,
            reuse_address=True,
            reuse_port=reuse_port,
        )
        self._server = listener
        address = listener.sockets[0].getsockname()
        self._sample_open()
        self._sweeping = loop.call_later(self._sweep_every, self._sweep)
        log.info("fastagi listening", host=address[0], port=address[1], routes=sorted(self._routes))
        return address[0], address[1]

    async def stop(self, grace_s: float = 3.0) -> None:
        """Stop listening; sessions still talking to Asterisk get `grace_s` to finish."""
        if self._server is not None:
            self._server.close()
            try:
                await asyncio.wait_for(self._server.wait_closed(), grace_s)
            except TimeoutError:
                log.warning("fastagi sessions still open at stop", open=len(self._open))
            self._server = None
        if self._sampling is not None:
            self._sampling.cancel()
            self._metrics.agi_open.set(0)
        if self._sweeping is not None:
            self._sweeping.cancel()

    def _sweep(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        for session in list(self._open):
            session.check_idle(now)
        self._sweeping = loop.call_later(self._sweep_every, self._sweep)

    def _sample_open(self) -> None:
        """The open-sessions gauge, set every second rather than moved at every connection: a
        gauge is read every few seconds, a connection comes every fraction of a millisecond."""
        self._metrics.agi_open.set(len(self._open))
        self._sampling = asyncio.get_running_loop().call_later(1.0, self._sample_open)

    # -- SessionHost -------------------------------------------------------------------------
    def admit(self, session: AgiSession) -> bool:
        address = session.address
        if len(self._open) >= self._max or self._per_peer.get(address, 0) >= self._max_per_peer:
            # Shed load rather than grow without bound; Asterisk then runs the dialplan fallback.
            # One address may hold only its share, so a hostile peer cannot take every slot.
            log.warning("fastagi connection refused: too many at once", limit=self._max, peer=session.peer,
                        per_peer_limit=self._max_per_peer, from_this_peer=self._per_peer.get(address, 0))
            self._metrics.agi_refused.inc()
            return False
        self._per_peer[address] = self._per_peer.get(address, 0) + 1
        self._open.add(session)
        return True

    def release(self, session: AgiSession) -> None:
        self._open.discard(session)
        address = session.address
        left = self._per_peer.pop(address) - 1
        if left:
            self._per_peer[address] = left
        self.handled += 1

    def begin(self, session: AgiSession, env: Environment) -> None:
        # Each call's log fields live in a context of its own (the protocol's callbacks share
        # the loop's); a task started here copies it, callbacks registered here run in it.
        contextvars.copy_context().run(self._begin, session, env)

    def _begin(self, session: AgiSession, env: Environment) -> None:
        start_call_fields(peer=session.peer)
        if env.malformed:
            log.warning("fastagi environment lines without 'name: value' ignored", lines=list(env.malformed[:5]),
                        count=len(env.malformed))
        route = self._routes.get(env.script)
        if route is None:
            log.error("fastagi request for an unknown route", route=env.script, known=sorted(self._routes))
            session.close()
            return
        try:
            work = route(session, env)
        except Exception as exc:  # a route that failed to start: this call only
            log_ended(exc)
            session.close()
            return
        if work is not None:
            task = asyncio.get_running_loop().create_task(self._run(session, work))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run(self, session: AgiSession, work: Coroutine[Any, Any, None]) -> None:
        started = time.perf_counter()
        try:
            await work
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log_ended(exc, elapsed_ms=round((time.perf_counter() - started) * 1000, 2))
        finally:
            session.close()
