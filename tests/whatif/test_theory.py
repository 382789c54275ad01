"""The simulator against queueing theory, where theory has an exact answer.

Tolerance: each check asks that the formula's value lie inside the simulator's 95% confidence
interval across replications, widened by a small allowance for what the formula leaves out (the
hotline starts empty; a warm-up hour is dropped but the start still leaks a little). The seed is
fixed, so a check passes or fails the same way every run; with 10 replications of 100-200
simulated hours the intervals are a few tenths of a percent of service level wide, tight enough
that a routing mistake (a wrong weight order, a lost caller, a double count) shows at once.
"""

from __future__ import annotations

import pytest

from hotline.whatif import theory
from hotline.whatif.run import run
from hotline.whatif.setup import AgentGroup, QueueSpec, Setup
from hotline.whatif.summary import Estimate
from hotline.whatif.traffic import Arrivals, Distribution, Traffic

HANDLE_S = 180.0


def one_group(n: int, levels: list[tuple[str, int]], sl_s: float = 20) -> Setup:
    """`levels` (name, weight) all served by one group of n agents at penalty 0; no maximum wait,
    no queue limit: the textbook model."""
    queues = tuple(QueueSpec(name, weight, 0, 0.0, sl_s, 0.8) for name, weight in levels)
    return Setup(queues, (AgentGroup("general", n, tuple((name, 0) for name, _ in levels)),), 11, f"{n} agents")


def traffic(rates: dict[str, float], hours: float, patience_s: float | None = None) -> Traffic:
    exp = Distribution(distribution="exponential", mean=HANDLE_S)
    patience = Distribution(distribution="exponential", mean=patience_s) if patience_s else None
    streams = tuple(Arrivals(level, level, (rate,), exp, patience) for level, rate in rates.items())
    return Traffic(hours, 3600, 3600, 0, 0, streams, "theory")


def within(value: float, estimate: Estimate, allowance: float) -> bool:
    return estimate.low - allowance <= value <= estimate.high + allowance


@pytest.mark.parametrize("occupancy", [0.5, 0.7, 0.85, 0.95])
def test_one_level_one_group_agrees_with_erlang_c(occupancy: float) -> None:
    n = 10
    load = occupancy * n
    rate = load / HANDLE_S * 3600  # calls per hour
    outcome = run(one_group(n, [("only", 1)]), traffic({"only": rate}, hours=150), 10, seed=5)
    level = outcome.level("only")
    sl = theory.erlang_c_service_level(n, load, HANDLE_S, 20)
    asa = theory.erlang_c_asa(n, load, HANDLE_S)
    waiting = theory.erlang_c(n, load)
    assert within(sl, level.service_level, 0.005), (sl, level.service_level)
    assert within(waiting, level.waited_share, 0.005), (waiting, level.waited_share)
    assert within(asa, level.asa_s, 0.03 * asa + 0.5), (asa, level.asa_s)
    assert level.abandoned.mean == 0
    assert level.released.mean == 0
    occupancy_seen = outcome.desks[0].occupancy
    assert within(occupancy, occupancy_seen, 0.005)


@pytest.mark.parametrize(("occupancy", "patience_s"), [(0.9, 120.0), (1.1, 60.0)])
def test_with_patience_agrees_with_erlang_a(occupancy: float, patience_s: float) -> None:
    """M/M/n+M, even past 100% offered load (abandonment keeps it stable)."""
    n = 10
    rate_s = occupancy * n / HANDLE_S
    outcome = run(one_group(n, [("only", 1)]), traffic({"only": rate_s * 3600}, hours=150, patience_s=patience_s),
                  10, seed=6)
    level = outcome.level("only")
    _, abandon, mean_wait = theory.erlang_a(n, rate_s, HANDLE_S, patience_s)
    abandoned_share = Estimate(level.abandoned.mean / level.offered.mean, level.abandoned.low / level.offered.mean,
                               level.abandoned.high / level.offered.mean)
    assert within(abandon, abandoned_share, 0.005), (abandon, abandoned_share)
    assert within(mean_wait, level.mean_wait_s, 0.03 * mean_wait + 0.3), (mean_wait, level.mean_wait_s)
    assert level.released.mean == 0


def test_two_priorities_on_one_group_agree_with_the_priority_formula() -> None:
    """The higher-weight level's callers are taken first when an agent comes free: each level's
    mean wait matches the non-preemptive priority queue (Cobham), and the order is right."""
    n = 10
    rates_s = [0.3 * n / HANDLE_S, 0.55 * n / HANDLE_S]  # 85% in all: 30% high, 55% low
    outcome = run(one_group(n, [("high", 70), ("low", 10)]),
                  traffic({"high": rates_s[0] * 3600, "low": rates_s[1] * 3600}, hours=200), 10, seed=7)
    expected = theory.priority_waits(n, rates_s, HANDLE_S)
    high, low = outcome.level("high").mean_wait_s, outcome.level("low").mean_wait_s
    assert within(expected[0], high, 0.05 * expected[0] + 0.2), (expected[0], high)
    assert within(expected[1], low, 0.05 * expected[1] + 0.2), (expected[1], low)
    assert high.high < low.low  # the order, beyond the noise


def test_erlang_formulas_at_known_values() -> None:
    """Published figures: 10 agents, 8 erlangs gives P(wait) 0.4092 (Erlang C tables); Erlang A
    tends to Erlang C as patience grows."""
    assert theory.erlang_c(10, 8) == pytest.approx(0.4092, abs=5e-4)
    waiting, abandon, wait = theory.erlang_a(10, 8 / HANDLE_S, HANDLE_S, 1e7)
    assert waiting == pytest.approx(theory.erlang_c(10, 8), rel=1e-4)
    assert abandon == pytest.approx(0, abs=1e-4)
    assert wait == pytest.approx(theory.erlang_c_asa(10, 8, HANDLE_S), rel=1e-3)
