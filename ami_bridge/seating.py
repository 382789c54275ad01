"""Which desk an agent sits at today (the call records note it when an agent answers; the live
board counts desks by it): from the roster in Redis and the policy's desk rule, read again at
most every `refresh_s`."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime

from redis.exceptions import RedisError

from ami_bridge.desks import assign_desks
from ami_bridge.roster import Roster
from hotline_core.policy import Policy

DeskOf = Callable[[str], str | None]  # agent id or queue member name -> desk


class Seating:
    def __init__(self, roster: Roster, policy: Policy, clock: Callable[[], datetime], refresh_s: float = 30.0):
        self._roster = roster
        self._policy = policy
        self._clock = clock
        self._refresh_s = refresh_s
        self._desk_of: dict[str, str] = {}
        self._read_at = float("-inf")
        # Each virtual desk's agents seated and share of them the desk rule qualifies (the
        # desk_rule alarm).
        self.shares: dict[str, tuple[int, float]] = {}
        # An agent at no virtual desk answers as a member of the group everyone belongs to.
        self._everyone = policy.everyone_group or None

    async def __call__(self) -> DeskOf:
        now = asyncio.get_running_loop().time()
        if now - self._read_at < self._refresh_s:
            return self._desk_of.get
        try:
            agents = await self._roster.all()
        except (RedisError, OSError):
            return self._desk_of.get  # the last known seating
        seating = assign_desks(agents, self._policy, self._clock().astimezone(self._policy.zone).date())
        desk_of: dict[str, str] = {}
        for agent in agents:
            desk = next((d for d, members in seating.desks.items() if agent.agent_id in members), self._everyone)
            if desk:
                desk_of[agent.agent_id] = desk
                desk_of[agent.interface.split("/", 1)[-1]] = desk  # queue_log names the queue member
        self._desk_of, self._read_at = desk_of, now
        self.shares = ({desk: (len(members), seating.qualified_share(desk)) for desk, members in seating.desks.items()}
                       if agents else {})
        return desk_of.get
