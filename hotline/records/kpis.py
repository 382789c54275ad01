"""Agents' KPIs from the records, and the desk rule judged on them (pure, explainable).

The figures are the reports' (hotline.records.report: satisfaction over surveys answered,
first-contact resolution over decided calls, AHT = talk time over answered calls). A measured
figure counts once its sample reaches the policy's minimum (measurement.min_surveys,
min_fcr_calls); below it the roster's typed-in figure stands, and says so. `qualified` and
`reasons` are the desk rule's verdict (ami_bridge.desks.judge) on the figures that count.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date
from typing import Any

from ami_bridge.desks import DeskAssignment, judge
from ami_bridge.roster import Agent
from hotline.records.report import figures
from hotline_core.policy import Policy

SATISFACTION, RESOLUTION = "satisfaction", "first_contact_resolution"
COLUMNS = ("agent", "name", "calls", "surveyed", "csat", "fcr_decided", "fcr", "aht_s", "tenure_months",
           "satisfaction_used", "fcr_used", "typed_in", "qualified", "reasons")


@dataclass(frozen=True, slots=True)
class Kpis:
    agent: str
    name: str
    calls: int  # answered
    surveyed: int
    csat: float | None
    fcr_decided: int
    fcr: float | None
    aht_s: float | None
    tenure_months: int | None  # None: not on the roster
    satisfaction_used: float | None  # the figure the desk rule judged (measured, or typed in)
    fcr_used: float | None
    typed_in: tuple[str, ...]  # the figures judged that were typed in (too little data measured)
    qualified: bool
    reasons: tuple[str, ...]

    def row(self) -> dict[str, Any]:
        out = {name: getattr(self, name) for name in COLUMNS}
        out["typed_in"] = list(self.typed_in)
        out["reasons"] = list(self.reasons)
        return out


def measured(agent: Agent, counts: Mapping[str, Any] | None, policy: Policy) -> Agent:
    """The agent with each figure the records measured well enough in place of the one it has."""
    if counts is None:
        return agent
    rule = policy.measurement
    out = figures(counts, policy, None)
    changes: dict[str, Any] = {}
    kinds: list[str] = []
    if out["csat"] is not None and out["surveyed"] >= rule.min_surveys:
        changes[SATISFACTION] = out["csat"]
        kinds.append(SATISFACTION)
    if out["fcr"] is not None and out["fcr_decided"] >= rule.min_fcr_calls:
        changes[RESOLUTION] = out["fcr"]
        kinds.append(RESOLUTION)
    # A figure measured before and too thinly sampled now keeps its last measured value and mark.
    marks = set(kinds) | set(agent.measured)
    return replace(agent, **changes, measured=tuple(k for k in (SATISFACTION, RESOLUTION) if k in marks))


def agent_kpis(counts: Sequence[Mapping[str, Any]], roster: Sequence[Agent], policy: Policy,
               today: date) -> list[Kpis]:
    """One row per agent on the roster, and per agent of the records no longer on it."""
    by_agent = {str(row["agent"]): row for row in counts if row["agent"]}
    rows = []
    for agent in roster:
        counted = by_agent.pop(agent.agent_id, None)
        judged = measured(agent, counted, policy)
        verdict = judge(judged, policy, today)
        typed = tuple(k for k in (SATISFACTION, RESOLUTION) if k not in judged.measured)
        reasons = tuple(f"{r} (typed in)" if _about(r) in typed else r for r in verdict.reasons)
        rows.append(_kpis(agent.agent_id, agent.name, counted, policy, agent.tenure_months(today),
                          judged.satisfaction, judged.first_contact_resolution, typed, verdict.qualified, reasons))
    for agent_id, counted in sorted(by_agent.items()):
        rows.append(_kpis(agent_id, "", counted, policy, None, None, None, (), False, ("not on the roster",)))
    return rows


def _about(reason: str) -> str:
    return SATISFACTION if reason.startswith("satisfaction") else (
        RESOLUTION if reason.startswith("first-contact") else "")


def _kpis(agent_id: str, name: str, counted: Mapping[str, Any] | None, policy: Policy, tenure: int | None,
          satisfaction: float | None, resolution: float | None, typed: tuple[str, ...], qualified: bool,
          reasons: tuple[str, ...]) -> Kpis:
    out = figures(counted, policy, None) if counted is not None else None
    return Kpis(agent_id, name, out["answered"] if out else 0, out["surveyed"] if out else 0,
                out["csat"] if out else None, out["fcr_decided"] if out else 0, out["fcr"] if out else None,
                out["aht_s"] if out else None, tenure, satisfaction, resolution, typed, qualified, reasons)


@dataclass(frozen=True, slots=True)
class DeskChange:
    agent: str
    leaves: str | None  # the virtual desk the agent sits at today (None: none)
    joins: str | None  # the one the measurements give
    why: str


def desk_changes(today_: DeskAssignment, measured_: DeskAssignment) -> list[DeskChange]:
    """Who moves between virtual desks when the measurements replace today's figures, and why
    (the verdict on the measured figures, in the operators' terms)."""
    changes = []
    for agent_id in sorted(measured_.verdicts):
        before, after = today_.desk_of(agent_id), measured_.desk_of(agent_id)
        if before == after:
            continue
        verdict = measured_.verdicts[agent_id]
        agent = verdict.agent
        figures_ = (f"satisfaction {agent.satisfaction:.0%}, "
                    f"first-contact resolution {agent.first_contact_resolution:.0%}")
        if after is None:
            why = "; ".join(verdict.reasons) or f"no seat left for a qualified agent ({figures_})"
        elif verdict.qualified:
            why = f"qualified ({figures_})"
        else:
            why = f"a seat the rule's share leaves for the unqualified ({'; '.join(verdict.reasons)})"
        changes.append(DeskChange(agent_id, before, after, why))
    return changes
