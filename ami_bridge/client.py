"""AMI over panoramisk 1.4, behind an interface we own.

panoramisk must be built inside a running loop and logs in asynchronously; its `close()` does
not stop the reconnect it schedules when the socket drops. This wrapper creates the manager in
the loop, waits for the login's answer (failing with a clear error), and really closes.
Keep-alive checking and resync after reconnect come with the AMI bridge itself.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from panoramisk import Manager

EventCallback = Callable[[dict[str, str]], None]


class AmiError(RuntimeError):
    pass


class _Manager(Manager):  # type: ignore[misc]
    """panoramisk's manager without its own reconnect: the bridge owns reconnection (with backoff
    and a resync), so a lost link only marks the client lost."""

    on_lost: Callable[[], None] | None = None

    def connection_lost(self, exc: Exception | None) -> None:
        self._connected = False
        pinger: Any = getattr(self, "pinger", None)
        if pinger is not None:
            pinger.cancel()
            self.pinger = None
        if self.on_lost is not None:
            self.on_lost()


class AmiClient:
    def __init__(self, host: str, port: int, username: str, secret: str, login_timeout_s: float = 5.0):
        self._config = {"host": host, "port": port, "username": username, "secret": secret}
        self._login_timeout = login_timeout_s
        self._manager: _Manager | None = None
        self._callbacks: list[EventCallback] = []
        self.lost = asyncio.Event()  # set when the link drops; a new connect() clears it

    def subscribe(self, callback: EventCallback) -> None:
        """`callback` gets every event as a plain dict (header name -> value)."""
        self._callbacks.append(callback)

    def _dispatch(self, _manager: Any, message: Any) -> None:
        event = {str(k): str(v) for k, v in message.items()}
        for callback in self._callbacks:
            callback(event)

    async def connect(self) -> None:
        manager = _Manager(
            loop=asyncio.get_running_loop(),
            ping_delay=3600,  # panoramisk's ping never checks the reply; the bridge runs its own
            reconnect_timeout=1,
            log=logging.getLogger("ami_bridge.panoramisk"),
            **self._config,
        )
        manager.register_event("*", self._dispatch)
        manager.on_lost = self.lost.set
        self.lost.clear()
        self._manager = manager
        try:
            await manager.connect()
        except OSError as exc:
            self._manager = None
            raise AmiError(f"cannot connect to AMI at {self._config['host']}:{self._config['port']}: {exc}") from None
        deadline = asyncio.get_running_loop().time() + self._login_timeout
        while not manager.authenticated:
            future = manager.authenticated_future
            if future is not None and future.done() and not manager.authenticated:
                await self.close()
                raise AmiError(f"AMI login refused for user {self._config['username']!r} (check the secret)")
            if asyncio.get_running_loop().time() > deadline or self.lost.is_set():
                await self.close()
                raise AmiError("AMI login got no answer")
            await asyncio.sleep(0.02)

    async def action(self, action: dict[str, str], as_list: bool = False) -> Any:
        """Send an action; its one response, or with `as_list` the list ending in ...Complete.

        Always explicit: panoramisk otherwise guesses from the reply's text, and takes
        QueueAdd's "Added interface to queue" for the start of a list that never comes."""
        if self._manager is None:
            raise AmiError("not connected")
        return await self._manager.send_action(action, as_list=as_list)

    async def close(self) -> None:
        if self._manager is not None:
            self._manager.on_lost = None
            self._manager.close()
            self._manager = None
