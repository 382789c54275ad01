"""Replications summed up: each figure's mean with a 95% confidence interval across replications
(Student's t, since there are few), each level against its target. Pure."""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

from hotline.whatif.engine import LevelTally, Replication, ratio
from hotline.whatif.setup import Setup

# Two-sided 95% quantiles of Student's t by degrees of freedom; past 30 the normal's is close.
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
         2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
         2.045, 2.042)


def t975(df: int) -> float:
    return _T975[df - 1] if 1 <= df <= len(_T975) else NormalDist().inv_cdf(0.975)


@dataclass(frozen=True, slots=True)
class Estimate:
    mean: float
    low: float
    high: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Estimate:
        finite = [v for v in values if not math.isnan(v)]
        if not finite:
            return cls(math.nan, math.nan, math.nan)
        mean = sum(finite) / len(finite)
        if len(finite) < 2:
            return cls(mean, mean, mean)
        sd = math.sqrt(sum((v - mean) ** 2 for v in finite) / (len(finite) - 1))
        half = t975(len(finite) - 1) * sd / math.sqrt(len(finite))
        return cls(mean, mean - half, mean + half)

    def clipped(self, low: float, high: float) -> Estimate:
        if math.isnan(self.mean):
            return self
        return Estimate(self.mean, max(low, self.low), min(high, self.high))

    def rounded(self, digits: int = 4) -> float | None:
        return None if math.isnan(self.mean) else round(self.mean, digits)  # JSON has no NaN

    def interval(self, digits: int = 4) -> list[float | None]:
        return [None if math.isnan(v) else round(v, digits) for v in (self.low, self.high)]


@dataclass(frozen=True, slots=True)
class LevelResult:
    level: str
    offered: Estimate
    answered: Estimate
    service_level: Estimate
    answer_rate: Estimate
    asa_s: Estimate
    abandoned: Estimate
    released: Estimate
    refused: Estimate
    waited_share: Estimate  # answered after waiting / answered: Erlang C's probability of waiting
    mean_wait_s: Estimate  # every caller's time in queue, answered or not
    sl_seconds: float
    target: float

    @property
    def meets_target(self) -> bool:
        return self.service_level.mean >= self.target

    def to_json(self) -> dict[str, Any]:
        return {
            "level": self.level,
            "offered": self.offered.rounded(1),
            "offered_ci": self.offered.interval(1),
            "answered": self.answered.rounded(1),
            "service_level": self.service_level.rounded(4),
            "service_level_ci": self.service_level.interval(),
            "service_level_seconds": self.sl_seconds,
            "target": self.target,
            "meets_target": self.meets_target,
            "answer_rate": self.answer_rate.rounded(4),
            "answer_rate_ci": self.answer_rate.interval(),
            "asa_s": self.asa_s.rounded(2),
            "asa_s_ci": self.asa_s.interval(2),
            "abandoned": self.abandoned.rounded(1),
            "abandoned_ci": self.abandoned.interval(1),
            "released": self.released.rounded(1),
            "released_ci": self.released.interval(1),
            "refused_queue_full": self.refused.rounded(1),
        }


@dataclass(frozen=True, slots=True)
class DeskResult:
    desk: str
    agents: int
    occupancy: Estimate

    def to_json(self) -> dict[str, Any]:
        return {"desk": self.desk, "agents": self.agents, "occupancy": self.occupancy.rounded(4),
                "occupancy_ci": self.occupancy.interval()}


@dataclass(frozen=True, slots=True)
class Outcome:
    setup: Setup
    levels: tuple[LevelResult, ...]
    desks: tuple[DeskResult, ...]
    replications: int
    calls: int  # simulated callers, all replications

    @property
    def all_meet(self) -> bool:
        return all(level.meets_target for level in self.levels if level.offered.mean > 0)

    def level(self, name: str) -> LevelResult:
        return next(level for level in self.levels if level.level == name)


def summarise(setup: Setup, runs: Sequence[Replication], called: Collection[str]) -> Outcome:
    """Figures of the levels in `called` (those the traffic offers calls to)."""
    levels = []
    for spec in setup.queues:
        if spec.level not in called:
            continue
        tallies = [run.levels[spec.level] for run in runs]

        def est(figure: Callable[[LevelTally], float], tallies: list[LevelTally] = tallies) -> Estimate:
            return Estimate.of([figure(t) for t in tallies])

        levels.append(LevelResult(
            level=spec.level,
            offered=est(lambda t: t.offered),
            answered=est(lambda t: t.answered),
            service_level=est(lambda t: t.service_level).clipped(0, 1),
            answer_rate=est(lambda t: ratio(t.answered, t.offered)).clipped(0, 1),
            asa_s=est(lambda t: t.asa_s).clipped(0, math.inf),
            abandoned=est(lambda t: t.abandoned).clipped(0, math.inf),
            released=est(lambda t: t.released).clipped(0, math.inf),
            refused=est(lambda t: t.refused).clipped(0, math.inf),
            waited_share=est(lambda t: ratio(t.waited, t.answered)).clipped(0, 1),
            mean_wait_s=est(lambda t: ratio(t.wait_all_s, t.offered)).clipped(0, math.inf),
            sl_seconds=spec.sl_seconds,
            target=spec.target,
        ))
    desks = tuple(DeskResult(desk, agents, Estimate.of([run.occupancy(desk) for run in runs]).clipped(0, 1))
                  for desk, agents in (runs[0].desk_agents.items() if runs else ()))
    return Outcome(setup, tuple(levels), desks, len(runs), sum(run.calls for run in runs))
