"""Virtual desks from the roster, and the queue membership that follows (pure, explainable).

A virtual desk is a set of agents chosen by the policy's desk rule: at least a share of its
members must meet the satisfaction, first-contact-resolution and tenure thresholds. Qualified
agents are dealt to the desks in turn (best first), so each desk gets a fair share of the best;
seats left over take unqualified agents only while the desk's qualified share stays within the
rule. Every agent also belongs to the `everyone` group.

Routing rides on app_queue: one queue per access level; an agent's penalty in a level's queue is
the position, in that level's skill chain (closed seasonal desks left out), of the first group
the agent belongs to. app_queue rings the lowest penalty with a free member first and moves to
the next penalty at once when none is free, so a caller overflows desk by desk without leaving
the queue: its place and QUEUE_PRIO stay, and queue weights (the level's priority) decide which
level's caller a shared agent takes first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date

from ami_bridge.roster import Agent
from hotline_core.policy import Policy


@dataclass(frozen=True, slots=True)
class Verdict:
    agent: Agent
    qualified: bool
    reasons: tuple[str, ...]  # why not qualified, in the operators' terms

    @property
    def score(self) -> float:
        return self.agent.satisfaction + self.agent.first_contact_resolution


@dataclass(frozen=True, slots=True)
class DeskAssignment:
    desks: dict[str, tuple[str, ...]]  # virtual desk -> agent ids
    verdicts: dict[str, Verdict]  # agent id -> qualification
    unseated: tuple[str, ...] = field(default=())  # qualified or not, in no virtual desk

    def desk_of(self, agent_id: str) -> str | None:
        return next((d for d, members in self.desks.items() if agent_id in members), None)

    def qualified_share(self, desk: str) -> float:
        members = self.desks[desk]
        return sum(self.verdicts[m].qualified for m in members) / len(members) if members else 0.0


def judge(agent: Agent, policy: Policy, today: date) -> Verdict:
    rule = policy.desk_rule
    reasons = []
    if agent.satisfaction < rule.min_satisfaction:
        reasons.append(f"satisfaction {agent.satisfaction:.0%} < {rule.min_satisfaction:.0%}")
    if agent.first_contact_resolution < rule.min_first_contact_resolution:
        reasons.append(f"first-contact resolution {agent.first_contact_resolution:.0%} < "
                       f"{rule.min_first_contact_resolution:.0%}")
    tenure = agent.tenure_months(today)
    if tenure < rule.min_tenure_months:
        reasons.append(f"tenure {tenure} months < {rule.min_tenure_months}")
    return Verdict(agent, not reasons, tuple(reasons))


def assign_desks(agents: list[Agent], policy: Policy, today: date) -> DeskAssignment:
    verdicts = {a.agent_id: judge(a, policy, today) for a in agents}
    ranked = sorted(verdicts.values(), key=lambda v: (-v.score, v.agent.agent_id))
    sizes = {name: desk.size for name, desk in policy.desks.items() if desk.size is not None}
    desks: dict[str, list[str]] = {name: [] for name in sizes}
    qualified = [v.agent.agent_id for v in ranked if v.qualified]
    others = [v.agent.agent_id for v in ranked if not v.qualified]
    _deal(qualified, desks, sizes, lambda _desk: True)
    share = policy.desk_rule.min_qualified_share

    def room_for_unqualified(desk: str) -> bool:
        members = desks[desk]
        good = sum(verdicts[m].qualified for m in members)
        return good > 0 and good / (len(members) + 1) >= share

    _deal(others, desks, sizes, room_for_unqualified)
    seated = {m for members in desks.values() for m in members}
    return DeskAssignment({d: tuple(m) for d, m in desks.items()}, verdicts,
                          tuple(v.agent.agent_id for v in ranked if v.agent.agent_id not in seated))


def _deal(pool: list[str], desks: dict[str, list[str]], sizes: dict[str, int], accepts: Callable[[str], bool]) -> None:
    """Deal agents one at a time to the desk with the fewest members that has room (spread evenly)."""
    remaining = list(pool)
    while remaining:
        open_desks = [d for d in desks if len(desks[d]) < sizes[d] and accepts(d)]
        if not open_desks:
            return
        desk = min(open_desks, key=lambda d: (len(desks[d]), list(desks).index(d)))
        desks[desk].append(remaining.pop(0))


def queue_members(
    agents: list[Agent], assignment: DeskAssignment, policy: Policy, month: int
) -> dict[str, dict[str, int]]:
    """Queue -> agent interface -> penalty, for every access level's queue this month."""
    groups: dict[str, set[str]] = {}
    for name, spec in policy.desks.items():
        groups[name] = {a.agent_id for a in agents} if spec.everyone else set(assignment.desks.get(name, ()))
    by_id = {a.agent_id: a for a in agents}
    plan: dict[str, dict[str, int]] = {}
    for level in policy.levels:
        chain = [d for d in level.skill_chain if policy.desks[d].open_in(month)]
        members: dict[str, int] = {}
        for penalty, group in enumerate(chain):
            for agent_id in sorted(groups[group]):
                members.setdefault(by_id[agent_id].interface, penalty)
        plan[policy.queue(level.name)] = members
    return plan
