"""The what-if simulator against the real hotline: the same callers through Asterisk and through
the simulator, each level's service level and ASA compared.

Poisson arrivals of two levels (high-value callers who wait, new subscribers who give up after
12 s) for two minutes, placed by SIPp through the real Asterisk, `hotline serve` and its IVR;
the three SIPp agents hang up 7 s after answering (a little more work than three agents can
do: queues build and some new subscribers give up). The measured figures come from the call
records (PostgreSQL, from Asterisk's queue_log). The simulator replays the very calls the
records show (their level and queue entry) over the stack's policy and roster, and what the
records cannot say exactly becomes its randomness: the queue entry known to the second (the
sub-second part drawn), the teardown after each call plus app_queue's once-a-second recheck
of a waiting caller (0.1 to 1.1 s more per call), and the IVR time already spent of a caller's
patience (0 to 0.7 s). The simulator's interval is the 2.5 to 97.5 percentile of 40 such
replications, widened by a second for the records' whole-second waits.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from dataclasses import replace
from datetime import date

import asyncpg
import pytest

from ami_bridge.client import AmiClient
from ami_bridge.roster import parse_roster
from harness.procs import free_udp_port
from harness.sipp import SippAgent, place_call
from harness.waiting import until
from hotline.whatif.engine import Replication, draw_callers, simulate
from hotline.whatif.setup import Setup, setup_from_roster
from hotline.whatif.traffic import Arrivals, Distribution, Traffic
from hotline_core.policy import load_policy
from tests.e2e.conftest import ROSTER, Events, Stack, pause_all

TALK_S = 7.0
DURATION_S = 120.0
# Two levels without queue announcements (the simulator does not model them; see docs/whatif.md).
CALLERS = {"highend_easyown": ("13800000001", 0.15, None), "newsub_mzone": ("13800000002", 0.30, 12.0)}
REPLICATIONS = 40
# SIPp callers' RTP ports, 4 apart: below the kernel's ephemeral range (32768-60999), where a port picked
# for another socket meanwhile once took one of them (errno 98), and above the stack's Asterisk RTP
# ranges (20000-24999); the stack's own phones use 30000-39999.
MEDIA_BASE = 26000
Ami = tuple[AmiClient, Events]


def planned_arrivals() -> list[tuple[float, str, float, float]]:
    exp = Distribution(distribution="fixed", mean=TALK_S)
    streams = tuple(Arrivals(level, level, (rate * 3600,), exp, None) for level, (_, rate, _) in CALLERS.items())
    return draw_callers(Traffic(DURATION_S / 3600, 3600, 0, 0, 0, streams, "e2e"), seed=11, replication=0)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


@pytest.mark.timeout(600)
async def test_measured_service_falls_within_the_simulators_interval(stack: Stack, ami: Ami) -> None:
    client, _ = ami
    await pause_all(client, False)
    run_dir = stack.agents[0].run_dir
    timed = [SippAgent(a.name, a.sip_port, a.media_port, run_dir, talk_ms=int(TALK_S * 1000)) for a in stack.agents]
    for agent in stack.agents:
        agent.stop()
    for agent in timed:
        agent.start()
    began = time.time()
    try:
        loop = asyncio.get_running_loop()
        start = loop.time()
        calls = []
        for index, (arrival, level, _, _) in enumerate(planned_arrivals()):
            await asyncio.sleep(max(0.0, start + arrival - loop.time()))
            number, _, patience = CALLERS[level]
            # Media ports of their own: dozens of callers overlap, and a port picked at random
            # for each would sooner or later be one another caller holds.
            media = MEDIA_BASE + 4 * (index % 500)
            calls.append(asyncio.create_task(place_call(
                number, stack.sip_port, free_udp_port(), media, digits="0", wait_ms=300,
                patience_ms=int((patience or 90) * 1000), limit_s=120)))
        results = await asyncio.gather(*calls)
    finally:
        for agent in timed:
            agent.stop()
        for agent in stack.agents:
            agent.start()
    assert all(r.returncode == 0 for r in results), [r.output for r in results if r.returncode][:1]

    rows = await recorded(stack, began, len(results))
    policy = load_policy(stack.bridge.policy_file)
    agents, _ = parse_roster(ROSTER)
    setup = setup_from_roster(policy, agents, date.today())
    measured = figures(rows, setup)
    simulated = replay(rows, setup)
    for level, (sl, asa, offered) in measured.items():
        low_sl = percentile([run.levels[level].in_sl / offered for run in simulated["strict"]], 0.025)
        high_sl = percentile([run.levels[level].in_sl / offered for run in simulated["lenient"]], 0.975)
        asas = [run.levels[level].wait_answered_s / max(1, run.levels[level].answered) for run in simulated["plain"]]
        low_asa, high_asa = percentile(asas, 0.025) - 1.0, percentile(asas, 0.975) + 1.0
        print(f"{level}: offered {offered}, measured SL {sl:.3f} ASA {asa:.2f} s; simulated SL "
              f"[{low_sl:.3f}, {high_sl:.3f}] ASA [{low_asa:.2f}, {high_asa:.2f}] s")
        assert low_sl <= sl <= high_sl, (level, sl, low_sl, high_sl)
        assert low_asa <= asa <= high_asa, (level, asa, low_asa, high_asa)
    # The scenario is not trivial: callers waited, and impatient ones gave up.
    assert any(row["wait_s"] > 0 for row in rows)
    assert any(row["queue_outcome"] == "abandoned" for row in rows)


async def recorded(stack: Stack, began: float, placed: int) -> list[asyncpg.Record]:
    """The test's calls as the call records show them, once every one has its queue outcome."""
    numbers = [f"86{number}" for number, _, _ in CALLERS.values()]
    conn = await asyncpg.connect(stack.postgres.url())
    try:
        async def finished() -> list[asyncpg.Record]:
            found = await conn.fetch(
                "SELECT level, queue_outcome, wait_s, queue_entered_at FROM calls WHERE number = ANY($1) "
                "AND started_at >= to_timestamp($2) AND queue_outcome IN ('answered', 'abandoned', 'released')",
                numbers, began - 1)
            return list(found) if len(found) >= placed else []

        rows = await until(finished, f"{placed} calls recorded with a queue outcome", 60, every=1)
    finally:
        await conn.close()
    assert len(rows) == placed, f"{len(rows)} of {placed} calls recorded with a queue outcome"
    return rows


def figures(rows: list[asyncpg.Record], setup: Setup) -> dict[str, tuple[float, float, int]]:
    """Per level: service level, ASA, offered, from the records (the reports' definitions)."""
    out = {}
    for spec in setup.queues:
        mine = [r for r in rows if r["level"] == spec.level]
        if not mine:
            continue
        answered = [r for r in mine if r["queue_outcome"] == "answered"]
        in_sl = sum(1 for r in answered if r["wait_s"] <= spec.sl_seconds)
        out[spec.level] = (in_sl / len(mine), sum(r["wait_s"] for r in answered) / max(1, len(answered)), len(mine))
    return out


def replay(rows: list[asyncpg.Record], setup: Setup) -> dict[str, list[Replication]]:
    """Replications of the recorded calls; `strict` and `lenient` count the service level one
    second under and over the threshold (the records' waits are whole seconds)."""
    first = min(r["queue_entered_at"].timestamp() for r in rows)
    patience = {level: p for level, (_, _, p) in CALLERS.items()}
    traffic = Traffic(1, 3600, 0, 0, 0, (), "e2e replay")
    out: dict[str, list[Replication]] = {}
    for name, shift in (("strict", -1.0), ("plain", 0.0), ("lenient", 1.0)):
        shifted = replace(setup, queues=tuple(replace(q, sl_seconds=q.sl_seconds + shift) for q in setup.queues))
        runs = []
        for r in range(REPLICATIONS):
            rng = random.Random(r)
            callers = sorted(
                (row["queue_entered_at"].timestamp() - first + rng.random(), row["level"],
                 TALK_S + rng.uniform(0.1, 1.1),
                 (patience[row["level"]] or math.inf) - rng.uniform(0.0, 0.7))
                for row in rows)
            runs.append(simulate(shifted, traffic, 0, r, callers))
        out[name] = runs
    return out
