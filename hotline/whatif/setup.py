"""The hotline as the simulator sees it: one queue per access level, agents grouped by where
they sit, each group a member of some queues at some penalty. Built from the same policy and
desk rule that configure Asterisk (ami_bridge.desks), so a what-if routes as the hotline does.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from ami_bridge.desks import assign_desks, queue_members
from ami_bridge.roster import Agent
from hotline_core.policy import Policy


@dataclass(frozen=True, slots=True)
class QueueSpec:
    level: str
    weight: int  # the level's queue_priority: app_queue's queue weight
    maxlen: int  # 0: no limit
    max_wait_s: float
    sl_seconds: float
    target: float  # the level's answer_rate_target, compared with the service level


@dataclass(frozen=True, slots=True)
class AgentGroup:
    """Agents that sit at the same desk and so belong to the same queues at the same penalties."""

    desk: str
    count: int
    penalties: tuple[tuple[str, int], ...]  # (level, penalty) for every level queue it belongs to


@dataclass(frozen=True, slots=True)
class Setup:
    queues: tuple[QueueSpec, ...]
    groups: tuple[AgentGroup, ...]
    month: int
    description: str

    @property
    def agents(self) -> int:
        return sum(group.count for group in self.groups)

    def desk_sizes(self) -> dict[str, int]:
        sizes: dict[str, int] = {}
        for group in self.groups:
            sizes[group.desk] = sizes.get(group.desk, 0) + group.count
        return sizes


def queue_specs(policy: Policy) -> tuple[QueueSpec, ...]:
    return tuple(QueueSpec(level.name, level.queue_priority, level.max_queue_length, float(level.max_wait_seconds),
                           float(level.service_level_seconds), level.answer_rate_target) for level in policy.levels)


def setup_from_roster(policy: Policy, agents: list[Agent], on: date) -> Setup:
    """Desks dealt by the policy's desk rule on `on` (tenure counts), seasonal desks of that month."""
    assignment = assign_desks(agents, policy, on)
    plan = queue_members(agents, assignment, policy, on.month)
    everyone = policy.everyone_group
    counts: dict[tuple[str, tuple[tuple[str, int], ...]], int] = {}
    for agent in agents:
        desk = assignment.desk_of(agent.agent_id) or everyone
        penalties = tuple((level.name, plan[policy.queue(level.name)][agent.interface])
                          for level in policy.levels if agent.interface in plan[policy.queue(level.name)])
        counts[(desk, penalties)] = counts.get((desk, penalties), 0) + 1
    groups = tuple(AgentGroup(desk, n, penalties) for (desk, penalties), n in counts.items())
    return Setup(queue_specs(policy), groups, on.month, f"{len(agents)} agents from the roster, desks as on {on}")


def setup_with_agents(policy: Policy, count: int, on: date, desk_sizes: dict[str, int] | None = None) -> Setup:
    """`count` identical agents of the group everyone belongs to; with `desk_sizes`, that many of
    them seated at each virtual desk (all qualified), as `hotline whatif staff` tries."""
    everyone = policy.everyone_group
    seated = dict(desk_sizes or {})
    if sum(seated.values()) > count:
        raise ValueError(f"{sum(seated.values())} desk seats but only {count} agents")
    groups: list[AgentGroup] = []
    for desk, size in [*seated.items(), (everyone, count - sum(seated.values()))]:
        if size <= 0:
            continue
        penalties = []
        for level in policy.levels:
            # As ami_bridge.desks.queue_members: the position of the first group of the agent's
            # in the level's chain, seasonal desks closed this month left out.
            chain = [d for d in level.skill_chain if policy.desks[d].open_in(on.month)]
            positions = [i for i, group in enumerate(chain) if group in (desk, everyone)]
            if positions:
                penalties.append((level.name, positions[0]))
        groups.append(AgentGroup(desk, size, tuple(penalties)))
    seats = ", ".join(f"{desk} {size}" for desk, size in seated.items())
    return Setup(queue_specs(policy), tuple(groups), on.month,
                 f"{count} identical agents" + (f" ({seats})" if seats else ""))
