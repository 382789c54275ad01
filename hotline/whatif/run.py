"""Running what-ifs: replications of one scenario, two scenarios on common random numbers, and
the staffing search of `hotline whatif staff`."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from hotline.whatif.engine import Replication, simulate
from hotline.whatif.setup import Setup
from hotline.whatif.summary import Estimate, Outcome, summarise
from hotline.whatif.traffic import Traffic
from hotline_core.progress import Progress, silent


def replications(setup: Setup, traffic: Traffic, count: int, seed: int, progress: Progress = silent,
                 phase: str = "replications") -> list[Replication]:
    done = []
    for r in range(count):
        done.append(simulate(setup, traffic, seed, r))
        progress(phase, r + 1, count)
    return done


def run(setup: Setup, traffic: Traffic, count: int, seed: int, progress: Progress = silent,
        phase: str = "replications") -> Outcome:
    return summarise(setup, replications(setup, traffic, count, seed, progress, phase), traffic.levels)


@dataclass(frozen=True, slots=True)
class Difference:
    level: str
    service_level: Estimate  # B - A, paired by replication
    asa_s: Estimate
    abandoned: Estimate

    @property
    def significant(self) -> bool:
        """Whether the service level differs beyond the noise (its interval excludes zero)."""
        return self.service_level.low > 0 or self.service_level.high < 0


@dataclass(frozen=True, slots=True)
class Comparison:
    a: Outcome
    b: Outcome
    differences: tuple[Difference, ...]


def compare(a: tuple[Setup, Traffic], b: tuple[Setup, Traffic], count: int, seed: int,
            progress: Progress = silent) -> Comparison:
    """Both scenarios meet the same callers (common random numbers), replication by replication,
    so each level's difference is the change's, with a paired confidence interval."""
    runs_a = replications(*a, count, seed, progress, "replications of A")
    runs_b = replications(*b, count, seed, progress, "replications of B")
    differences = []
    for spec in a[0].queues:
        if spec.level not in a[1].levels:
            continue
        pairs = [(ra.levels[spec.level], rb.levels[spec.level]) for ra, rb in zip(runs_a, runs_b, strict=True)]

        sl = Estimate.of([tb.service_level - ta.service_level for ta, tb in pairs])
        asa = Estimate.of([tb.asa_s - ta.asa_s for ta, tb in pairs])
        abandoned = Estimate.of([float(tb.abandoned - ta.abandoned) for ta, tb in pairs])
        differences.append(Difference(spec.level, sl, asa, abandoned))
    return Comparison(summarise(a[0], runs_a, a[1].levels), summarise(b[0], runs_b, b[1].levels),
                      tuple(differences))


@dataclass(frozen=True, slots=True)
class StaffPlan:
    total: int | None  # the fewest agents meeting every level's target; None: not within the limit
    desks: dict[str, int]  # seats each virtual desk needs at that total (the rest in the general group)
    curve: tuple[tuple[int, Outcome], ...]  # what was simulated, by agents
    best: Outcome | None


def staff(make_setup: Callable[[int, dict[str, int]], Setup], desks: dict[str, int], traffic: Traffic,
          count: int, seed: int, limit: int = 2000, progress: Progress = silent) -> StaffPlan:
    """The fewest agents for which every level meets its target, seats at each virtual desk as
    given; then, at that total, the fewest seats each desk can do with. Service level grows with
    agents, so the search brackets the answer by doubling and halves the bracket; every scenario
    meets the same callers (common random numbers)."""
    seen: dict[int, Outcome] = {}
    seats = sum(desks.values())

    def outcome(n: int, layout: dict[str, int]) -> Outcome:
        return run(make_setup(n, layout), traffic, count, seed, progress, f"{n} agents")

    def meets(n: int) -> bool:
        if n not in seen:
            seen[n] = outcome(n, desks)
        return seen[n].all_meet

    low = max(seats, 1, math.floor(_offered_erlangs(traffic)))
    if meets(low):
        return StaffPlan(low, dict(desks), tuple(sorted(seen.items())), seen[low])
    high = low
    while not meets(high):
        if high >= limit:
            return StaffPlan(None, dict(desks), tuple(sorted(seen.items())), None)
        low, high = high, min(limit, high * 2)
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if meets(middle) else (middle, high)
    layout = dict(desks)
    for desk in desks:
        while layout[desk] > 0 and outcome(high, {**layout, desk: layout[desk] - 1}).all_meet:
            layout[desk] -= 1
    # The curve around the answer, for the plot: a few agents either side.
    for n in range(max(seats, high - 4), high + 5):
        meets(n)
    return StaffPlan(high, layout, tuple(sorted(seen.items())), seen[high])


def _offered_erlangs(traffic: Traffic) -> float:
    """Average offered load in erlangs: below this many agents no level can meet any target."""
    total = 0.0
    for stream in traffic.streams:
        rate = sum(stream.rates) / len(stream.rates) / 3600
        total += rate * (stream.handle.average + traffic.wrap_up_s)
    return total

