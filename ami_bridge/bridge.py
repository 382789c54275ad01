"""The AMI bridge: keeps Asterisk's level queues staffed as the virtual desks say.

It logs in (retrying with backoff when Asterisk is away or refuses the login), checks the link
with a Ping whose answer it waits for, and after every (re)connect reads the queues back
(QueueStatus) and applies the difference to the desired membership: QueueAdd, QueuePenalty,
QueueRemove. It reconciles again every few seconds, so roster edits and seasonal desks (campus
in February, March, September, October) take effect without a restart. Nothing here is kept
between runs: the roster is in Redis and the membership in Asterisk.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import structlog
from redis.exceptions import RedisError

from ami_bridge.client import AmiClient, AmiError
from ami_bridge.desks import assign_desks, queue_members
from ami_bridge.model import MODEL_EVENTS, QueueModel
from ami_bridge.roster import Roster
from hotline_core.metrics import Metrics
from hotline_core.policy import Policy

log = structlog.get_logger("ami_bridge")

Membership = dict[str, dict[str, int]]  # queue -> interface -> penalty
# (event names, handler): AMI sends many events (every VarSet); a handler gets only its own.
Listener = tuple[frozenset[str], Callable[[dict[str, str]], Awaitable[object]]]


@dataclass(frozen=True, slots=True)
class Change:
    action: str  # QueueAdd, QueuePenalty, QueueRemove
    queue: str
    interface: str
    penalty: int = 0

    def as_action(self) -> dict[str, str]:
        action = {"Action": self.action, "Queue": self.queue, "Interface": self.interface}
        if self.action == "QueueAdd":
            action.update({"Penalty": str(self.penalty), "MemberName": self.interface.split("/", 1)[-1]})
        elif self.action == "QueuePenalty":
            action["Penalty"] = str(self.penalty)
        return action


def changes(desired: Membership, actual: Membership, static: set[tuple[str, str]]) -> list[Change]:
    """What to send to make `actual` into `desired` (pure). Only the queues in `desired` are
    managed; static members (from queues.conf) are never removed."""
    out: list[Change] = []
    for queue, wanted in desired.items():
        have = actual.get(queue, {})
        for interface, penalty in sorted(wanted.items()):
            if interface not in have:
                out.append(Change("QueueAdd", queue, interface, penalty))
            elif have[interface] != penalty:
                out.append(Change("QueuePenalty", queue, interface, penalty))
        for interface in sorted(set(have) - set(wanted)):
            if (queue, interface) not in static:
                out.append(Change("QueueRemove", queue, interface))
    return out


def read_members(messages: list[Any]) -> tuple[Membership, set[tuple[str, str]]]:
    """Queue membership from a QueueStatus reply (its QueueMember events)."""
    members: Membership = {}
    static: set[tuple[str, str]] = set()
    for message in messages:
        if message.get("Event") != "QueueMember":
            continue
        queue = message.get("Queue", "")
        interface = message.get("StateInterface") or message.get("Location") or message.get("Interface", "")
        members.setdefault(queue, {})[interface] = int(message.get("Penalty", "0") or 0)
        if message.get("Membership") == "static":
            static.add((queue, interface))
    return members, static


@dataclass
class AmiBridge:
    client_factory: Callable[[], AmiClient]
    roster: Roster
    policy: Policy
    clock: Callable[[], datetime]
    keepalive_s: float = 5.0
    reconcile_s: float = 10.0
    listeners: tuple[Listener, ...] = ()
    metrics: Metrics = field(default_factory=Metrics)
    applied: int = field(default=0, init=False)  # changes sent since start (for tests and logs)
    connected: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    model: QueueModel = field(default_factory=QueueModel, init=False)
    model_changed: asyncio.Event = field(default_factory=asyncio.Event, init=False)  # the live board waits on it

    async def run(self) -> None:
        """Forever: connect, keep the desks applied, reconnect with backoff when the link drops."""
        backoff = 1.0
        while True:
            client = self.client_factory()
            client.subscribe(self._notify)
            try:
                await client.connect()
            except AmiError as exc:
                log.error("AMI unavailable; retrying", error=str(exc), retry_in_s=backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30.0)
                continue
            backoff = 1.0
            log.info("AMI connected")
            self.connected.set()
            self.metrics.ami_up.set(1)
            try:
                await self._session(client)
            except (AmiError, TimeoutError, OSError) as exc:
                log.warning("AMI link lost; reconnecting", error=str(exc) or type(exc).__name__)
            finally:
                self.connected.clear()
                self.metrics.ami_up.set(0)
                await client.close()
            await asyncio.sleep(0.5)

    def _notify(self, event: dict[str, str]) -> None:
        name = event.get("Event", "")
        if name in MODEL_EVENTS:
            self.model.apply(event, time.time())
            self.model_changed.set()
        for names, listener in self.listeners:
            if name in names:
                task = asyncio.ensure_future(listener(event))
                task.add_done_callback(_log_failure)

    async def _session(self, client: AmiClient) -> None:
        await self.reconcile(client)
        next_reconcile = asyncio.get_running_loop().time() + self.reconcile_s
        while True:
            lost = asyncio.create_task(client.lost.wait())
            done, _ = await asyncio.wait({lost}, timeout=self.keepalive_s)
            if done:
                raise AmiError("the AMI connection closed")
            lost.cancel()
            # panoramisk's own ping never looks at the answer; this one does.
            reply = await asyncio.wait_for(client.action({"Action": "Ping"}), self.keepalive_s)
            if reply.get("Response") != "Success":
                raise AmiError(f"Ping answered {reply.get('Response')!r}")
            if asyncio.get_running_loop().time() >= next_reconcile:
                await self.reconcile(client)
                next_reconcile = asyncio.get_running_loop().time() + self.reconcile_s

    async def desired(self) -> Membership:
        now = self.clock().astimezone(self.policy.zone)
        agents = await self.roster.all()
        return queue_members(agents, assign_desks(agents, self.policy, now.date()), self.policy, now.month)

    async def reconcile(self, client: AmiClient) -> None:
        try:
            desired = await self.desired()
        except (RedisError, OSError) as exc:
            # Without the roster, keep what Asterisk has: the desks stay as last applied.
            log.warning("roster unavailable; queue membership left as it is", error=str(exc))
            return
        if not any(desired.values()):
            # An empty roster is far more likely a flushed or wrong Redis than a hotline with no
            # agents: unstaffing every queue would strand every caller.
            log.warning("roster is empty; queue membership left as it is")
            return
        status = await asyncio.wait_for(client.action({"Action": "QueueStatus"}, as_list=True), 10.0)
        messages = status if isinstance(status, list) else [status]
        self.model.resync(messages, time.time())
        self.model_changed.set()
        actual, static = read_members(messages)
        todo = changes(desired, actual, static)
        for change in todo:
            reply = await asyncio.wait_for(client.action(change.as_action()), 5.0)
            if reply.get("Response") != "Success":
                log.warning("queue change refused", change=change.action, queue=change.queue,
                            interface=change.interface, message=reply.get("Message"))
        if todo:
            self.applied += len(todo)
            log.info("queue membership applied", changes=len(todo),
                     added=sum(c.action == "QueueAdd" for c in todo),
                     removed=sum(c.action == "QueueRemove" for c in todo))


def _log_failure(task: asyncio.Future[object]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("AMI event listener failed", error=repr(task.exception()))
