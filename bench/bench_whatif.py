"""What-if simulator speed: a provincial hotline's day, and the choice of engine by measurement.

1. A day of a provincial hotline: 200,000 calls over 24 hours in a daily curve, 300 agents
   (virtual desks from the shipped policy, the rest in the general group), 8 levels, 5 desks.
   Prints the time per replication and simulated calls per second (goal: under 10 s).
2. The engine choice: the same single-queue model with patience (M/M/n+M, 100,000 callers,
   the very same callers) in SimPy and in our own event loop, both printing the same figures.

    .venv/bin/python -m bench.bench_whatif [--replications 3]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from datetime import date

import simpy

from hotline.whatif.engine import simulate
from hotline.whatif.run import run
from hotline.whatif.setup import AgentGroup, QueueSpec, Setup, setup_with_agents
from hotline.whatif.traffic import Arrivals, Distribution, Traffic
from hotline_core.policy import load_policy

# A provincial hotline's day: share of the day's calls in each hour (peaks at 10 and 15 h).
DAY_SHAPE = (0.4, 0.3, 0.2, 0.2, 0.2, 0.4, 1.0, 2.5, 5.0, 7.5, 8.0, 7.5, 5.5, 5.0, 6.5, 7.5, 7.5, 6.5, 5.5,
             5.0, 4.5, 3.5, 2.5, 1.3)
LEVEL_SHARE = {"gotone_vip": 0.04, "highend_easyown": 0.06, "highend_mzone": 0.04, "newsub_easyown": 0.06,
               "newsub_mzone": 0.05, "campus": 0.10, "ordinary_mzone": 0.30, "ordinary_easyown": 0.35}


def provincial_day(calls: int) -> Traffic:
    total_shape = sum(DAY_SHAPE)
    streams = []
    for level, share in LEVEL_SHARE.items():
        rates = tuple(calls * share * h / total_shape for h in DAY_SHAPE)
        handle = Distribution(distribution="lognormal", mean=90, sd=60)
        patience = Distribution(distribution="exponential", mean=90)
        streams.append(Arrivals(level, level, rates, handle, patience))
    return Traffic(24, 3600, 0, 5, 0, tuple(streams), "provincial day")


def mmn_setup(n: int) -> Setup:
    return Setup((QueueSpec("only", 1, 0, 0.0, 20, 0.8),), (AgentGroup("general", n, (("only", 0),)),), 11,
                 f"{n} agents")


def simpy_mmn(callers: list[tuple[float, str, float, float]], n: int) -> tuple[int, int, float]:
    """The same M/M/n+M in SimPy, fed the same callers: (answered, abandoned, total wait of the answered)."""
    env = simpy.Environment()
    agents = simpy.Resource(env, capacity=n)
    tally = {"answered": 0, "abandoned": 0, "wait": 0.0}

    def caller(arrival: float, handle: float, patience: float):  # type: ignore[no-untyped-def]
        yield env.timeout(arrival - env.now)
        with agents.request() as request:
            outcome = yield request | env.timeout(patience)
            if request in outcome:
                tally["answered"] += 1
                tally["wait"] += env.now - arrival
                yield env.timeout(handle)
            else:
                tally["abandoned"] += 1

    for arrival, _level, handle, patience in callers:
        env.process(caller(arrival, handle, patience))
    env.run()
    return int(tally["answered"]), int(tally["abandoned"]), float(tally["wait"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--replications", type=int, default=3)
    parser.add_argument("--calls", type=int, default=200_000)
    args = parser.parse_args()
    policy = load_policy()
    on = date(2026, 9, 15)  # the campus desk open: all five desks
    desks = {name: desk.size for name, desk in policy.desks.items() if desk.size}
    setup = setup_with_agents(policy, 300, on, desks)
    traffic = provincial_day(args.calls)
    times = []
    calls = 0
    for replication in range(args.replications):
        started = time.perf_counter()
        result = simulate(setup, traffic, 1, replication)
        times.append(time.perf_counter() - started)
        calls += result.calls
    per = sum(times) / len(times)
    print(f"provincial day: {calls // args.replications:,} calls, {setup.agents} agents, {len(setup.queues)} levels, "
          f"{len(setup.desk_sizes())} desks: {per:.2f} s per replication ({min(times):.2f}-{max(times):.2f}), "
          f"{calls / sum(times):,.0f} simulated calls/s (goal: under 10 s per replication)", flush=True)
    outcome = run(setup, traffic, 2, 1)
    worst = min(outcome.levels, key=lambda level: level.service_level.mean)
    print(f"  (its figures: lowest service level {worst.level} {worst.service_level.mean:.1%}, "
          f"occupancy {', '.join(f'{d.desk} {d.occupancy.mean:.0%}' for d in outcome.desks)})")

    n, load = 50, 45.0
    rate_h = load / 180 * 3600
    exp = Distribution(distribution="exponential", mean=180)
    hours = 100_000 / rate_h
    mmn = Traffic(hours, 3600 * math.ceil(hours), 0, 0, 0,
                  (Arrivals("only", "only", (rate_h,), exp, Distribution(distribution="exponential", mean=120)),),
                  "M/M/n+M")
    from hotline.whatif.engine import draw_callers

    callers = draw_callers(mmn, 1, 0)
    started = time.perf_counter()
    ours = simulate(mmn_setup(n), mmn, 1, 0)
    own_s = time.perf_counter() - started
    started = time.perf_counter()
    answered, abandoned, wait = simpy_mmn(callers, n)
    simpy_s = time.perf_counter() - started
    tally = ours.levels["only"]
    print(f"engine choice, M/M/{n}+M, the same {len(callers):,} callers:")
    print(f"  own event loop: {own_s:.2f} s ({len(callers) / own_s:,.0f} calls/s); answered {tally.answered:,}, "
          f"abandoned {tally.abandoned:,}, ASA {tally.wait_answered_s / tally.answered:.1f} s")
    print(f"  SimPy {simpy.__version__}:     {simpy_s:.2f} s ({len(callers) / simpy_s:,.0f} calls/s); answered "
          f"{answered:,}, abandoned {abandoned:,}, ASA {wait / answered:.1f} s")
    print(f"  ratio SimPy / own = {simpy_s / own_s:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
