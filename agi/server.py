"""The asyncio FastAGI server: accepts connections, reads the environment, hands it to a route.

Each connection is independent: whatever one peer sends (garbage, nothing, a megabyte line, an
early close) ends that connection with one log line and touches no other call.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping

import structlog

from agi.protocol import AgiError, Environment, RemoteProtocolError
from agi.session import AgiSession, ChannelGone, IdleTimeout
from hotline_core.logs import start_call_fields
from hotline_core.metrics import Metrics

log = structlog.get_logger("agi.server")

Route = Callable[[AgiSession, Environment], Awaitable[None]]


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
        self._active = 0
        self._server: asyncio.Server | None = None
        self.handled = 0

    @property
    def active(self) -> int:
        return self._active

    async def start(self, host: str, port: int, reuse_port: bool = False) -> tuple[str, int]:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: AgiSession(self._handle, self._idle, self._env_deadline),
            host,
            port,
            backlog=1024,
            reuse_address=True,
            reuse_port=reuse_port,
        )
        address = self._server.sockets[0].getsockname()
        log.info("fastagi listening", host=address[0], port=address[1], routes=sorted(self._routes))
        return address[0], address[1]

    async def stop(self, grace_s: float = 3.0) -> None:
        """Stop listening; sessions still talking to Asterisk get `grace_s` to finish."""
        if self._server is not None:
            self._server.close()
            try:
                await asyncio.wait_for(self._server.wait_closed(), grace_s)
            except TimeoutError:
                log.warning("fastagi sessions still open at stop", open=self._active)
            self._server = None

    async def _handle(self, session: AgiSession) -> None:
        # Each connection runs in its own task, so these fields stay with this call.
        start_call_fields(peer=session.peer)
        address = session.peer.rpartition(":")[0]
        if self._active >= self._max or self._per_peer.get(address, 0) >= self._max_per_peer:
            # Shed load rather than grow without bound; Asterisk then runs the dialplan fallback.
            # One address may hold only its share, so a hostile peer cannot take every slot.
            log.warning("fastagi connection refused: too many at once", limit=self._max,
                        per_peer_limit=self._max_per_peer, from_this_peer=self._per_peer.get(address, 0))
            self._metrics.agi_refused.inc()
            session.close()
            return
        self._active += 1
        self._per_peer[address] = self._per_peer.get(address, 0) + 1
        self._metrics.agi_open.inc()
        started = time.perf_counter()
        try:
            await self._serve(session)
        except ChannelGone as exc:
            log.warning("fastagi peer went away", reason=exc.reason)
        except IdleTimeout as exc:
            log.warning("fastagi peer idle; closing", waiting_for=exc.waiting_for, idle_timeout_s=self._idle)
        except RemoteProtocolError as exc:
            log.warning("fastagi peer broke the protocol; closing", error=str(exc))
        except AgiError as exc:
            log.error("fastagi protocol misuse (bug)", error=str(exc))
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("fastagi route failed", elapsed_ms=round((time.perf_counter() - started) * 1000, 2))
        finally:
            self._active -= 1
            left = self._per_peer.pop(address) - 1
            if left:
                self._per_peer[address] = left
            self._metrics.agi_open.dec()
            self.handled += 1
            session.close()

    async def _serve(self, session: AgiSession) -> None:
        env = await session.environment()
        if env.malformed:
            log.warning("fastagi environment lines without 'name: value' ignored", lines=list(env.malformed[:5]),
                        count=len(env.malformed))
        route = self._routes.get(env.script)
        if route is None:
            log.error("fastagi request for an unknown route", route=env.script, known=sorted(self._routes))
            return
        await route(session, env)
