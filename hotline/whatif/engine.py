"""A discrete-event simulation of the hotline's queues with app_queue's semantics as this project
configures them (asterisk_conf/queues.conf, ami_bridge.desks):

- one queue per access level; a caller waits in its level's queue, first come first served
  (every caller of a level carries the same QUEUE_PRIO);
- a queue's members are agent groups at penalties: an arriving caller goes to a free member of
  the lowest penalty, and to the next penalty at once when none is free (no queue rules widen
  the penalties over time; `queuerules.conf` is empty);
- an agent who comes free takes the head caller of the highest-weight queue it is a member of
  that has callers waiting (app_queue's weight comparison), one call at a time (ringinuse=no);
- a caller leaves unanswered at the level's maximum wait (released, the Queue() timeout), on a
  full queue at once (released: refused, maxlen), or at the end of its patience (abandoned);
- after each call the agent takes the wrap-up time.

An event loop of our own rather than a library: bench/bench_whatif.py measured SimPy on the
same model and this loop is several times faster (docs/benchmarks.md gives the figures).

Common random numbers: each stream's callers (arrival, handle time, patience) are drawn from
their own generator seeded by (seed, replication, stream) before any routing, so two policies
or rosters simulated with the same seed meet the very same callers.
"""

from __future__ import annotations

import heapq
import math
import random
from collections import deque
from dataclasses import dataclass, field

from hotline.whatif.setup import Setup
from hotline.whatif.traffic import Arrivals, Distribution, Traffic

WAITING, SERVED, GONE = 0, 1, 2
_DONE, _ABANDON, _RELEASE = 0, 1, 2
Caller = tuple[float, str, float, float]  # arrival (s into the period), level, handle time, patience


def ratio(part: float, whole: float) -> float:
    """part / whole; NaN when there is no whole (a level nobody called)."""
    return part / whole if whole else math.nan


@dataclass(slots=True)
class LevelTally:
    offered: int = 0
    answered: int = 0
    in_sl: int = 0  # answered within the level's service_level_seconds
    wait_answered_s: float = 0.0
    wait_all_s: float = 0.0  # every counted caller's time in queue (Erlang A's mean wait)
    waited: int = 0  # answered callers who were not answered at once
    abandoned: int = 0
    released: int = 0  # at the maximum wait, or refused by a full queue
    refused: int = 0  # of the released: the queue was full

    @property
    def service_level(self) -> float:
        return ratio(self.in_sl, self.offered)

    @property
    def asa_s(self) -> float:
        return ratio(self.wait_answered_s, self.answered)


@dataclass(slots=True)
class Replication:
    levels: dict[str, LevelTally]
    desk_agents: dict[str, int]
    desk_busy_s: dict[str, float]
    measured_s: float
    calls: int = 0
    events: int = 0
    notes: list[str] = field(default_factory=list)

    def occupancy(self, desk: str) -> float:
        agents = self.desk_agents[desk]
        return self.desk_busy_s[desk] / (agents * self.measured_s) if agents and self.measured_s else 0.0


def sampler(dist: Distribution, rng: random.Random) -> float:
    kind = dist.distribution
    if kind == "exponential":
        return rng.expovariate(1.0 / float(dist.mean or 1.0))
    if kind == "fixed":
        return float(dist.mean or 0.0)
    if kind == "lognormal":
        mean, sd = float(dist.mean or 1.0), float(dist.sd or 0.0)
        sigma2 = math.log(1 + (sd / mean) ** 2)
        return rng.lognormvariate(math.log(mean) - sigma2 / 2, math.sqrt(sigma2))
    return rng.choice(dist.values)


def draw_callers(traffic: Traffic, seed: int, replication: int) -> list[Caller]:
    """(arrival, level, handle time, patience) of every caller of one replication, by arrival.
    Patience is infinite for a stream without one."""
    out: list[Caller] = []
    period = traffic.period_s
    for index, stream in enumerate(traffic.streams):
        rng = random.Random(f"{seed}:{replication}:{index}:{stream.source}")
        out += _stream_callers(traffic, stream, rng, period)
    out.sort(key=lambda caller: caller[0])
    return out


def _stream_callers(traffic: Traffic, stream: Arrivals, rng: random.Random, period: float) -> list[Caller]:
    callers = []
    t = 0.0
    while t < period:
        end = min(period, (math.floor(t / traffic.interval_s) + 1) * traffic.interval_s)
        rate = traffic.rate_at(stream, t)
        if rate <= 0:
            t = end
            continue
        arrival = t + rng.expovariate(rate)
        if arrival >= end:
            t = end  # memoryless: the next interval starts afresh at its own rate
            continue
        t = arrival
        handle = sampler(stream.handle, rng)
        patience = sampler(stream.patience, rng) if stream.patience else math.inf
        callers.append((t, stream.level, handle, patience))
    return callers


def simulate(setup: Setup, traffic: Traffic, seed: int, replication: int,
             callers: list[Caller] | None = None) -> Replication:
    """One replication; `callers` (by arrival) replaces the ones the traffic would draw, to
    replay a known sequence (the check against real Asterisk does)."""
    levels = [q.level for q in setup.queues]
    index_of = {name: i for i, name in enumerate(levels)}
    specs = setup.queues
    groups = setup.groups
    # Per level: member groups by penalty. Per group: its queues by weight, highest first.
    penalty: list[dict[int, int]] = [{} for _ in levels]
    for gi, group in enumerate(groups):
        for level, at in group.penalties:
            penalty[index_of[level]][gi] = at
    members = [sorted(by_group, key=lambda gi, by=by_group: by[gi]) for by_group in penalty]  # type: ignore[misc]
    serves: list[list[int]] = [
        sorted((index_of[level] for level, _ in group.penalties), key=lambda li: -specs[li].weight) for group in groups
    ]
    free = [group.count for group in groups]
    busy = [0.0] * len(groups)
    queues: list[deque[list[float]]] = [deque() for _ in levels]
    waiting = [0] * len(levels)
    tallies = [LevelTally() for _ in levels]
    warmup, period = traffic.warmup_s, traffic.period_s
    wrap, delay = traffic.wrap_up_s, traffic.answer_delay_s
    events: list[tuple[float, int, int, object]] = []
    seq = 0
    handled_events = 0

    def start(gi: int, caller: list[float], now: float) -> None:
        nonlocal seq
        caller[4] = SERVED
        if caller[0] >= warmup:
            tally = tallies[int(caller[1])]
            wait = now - caller[0] + delay
            tally.answered += 1
            tally.wait_answered_s += wait
            tally.wait_all_s += wait
            if wait > 0:
                tally.waited += 1
            if wait <= specs[int(caller[1])].sl_seconds:
                tally.in_sl += 1
        end = now + delay + caller[2] + wrap
        busy[gi] += max(0.0, min(end, period) - max(now, warmup))
        seq += 1
        heapq.heappush(events, (end, seq, _DONE, gi))

    def agent_free(gi: int, now: float) -> None:
        for li in serves[gi]:
            queue = queues[li]
            while queue and queue[0][4] != WAITING:
                queue.popleft()
            if queue:
                caller = queue.popleft()
                waiting[li] -= 1
                start(gi, caller, now)
                return
        free[gi] += 1

    def give_up(caller: list[float], kind: int, now: float) -> None:
        if caller[4] != WAITING:
            return
        caller[4] = GONE
        li = int(caller[1])
        waiting[li] -= 1
        if caller[0] >= warmup:
            tally = tallies[li]
            tally.wait_all_s += now - caller[0]
            if kind == _ABANDON:
                tally.abandoned += 1
            else:
                tally.released += 1

    def run_events_until(limit: float) -> None:
        nonlocal handled_events
        while events and events[0][0] <= limit:
            now, _, kind, ref = heapq.heappop(events)
            handled_events += 1
            if kind == _DONE:
                agent_free(ref, now)  # type: ignore[arg-type]
            else:
                give_up(ref, kind, now)  # type: ignore[arg-type]

    if callers is None:
        callers = draw_callers(traffic, seed, replication)
    for arrival, level, handle, patience in callers:
        run_events_until(arrival)
        li = index_of[level]
        spec = specs[li]
        counted = arrival >= warmup
        if counted:
            tallies[li].offered += 1
        for gi in members[li]:
            if free[gi]:
                free[gi] -= 1
                start(gi, [arrival, li, handle, patience, WAITING], arrival)
                break
        else:
            if spec.maxlen and waiting[li] >= spec.maxlen:
                if counted:
                    tallies[li].released += 1
                    tallies[li].refused += 1
                continue
            caller = [arrival, li, handle, patience, WAITING]
            queues[li].append(caller)
            waiting[li] += 1
            leave = min(patience, spec.max_wait_s if spec.max_wait_s > 0 else math.inf)
            if leave < math.inf:
                seq += 1
                kind = _ABANDON if patience < spec.max_wait_s or spec.max_wait_s <= 0 else _RELEASE
                heapq.heappush(events, (arrival + leave, seq, kind, caller))
    run_events_until(math.inf)
    desk_agents: dict[str, int] = {}
    desk_busy: dict[str, float] = {}
    for gi, group in enumerate(groups):
        desk_agents[group.desk] = desk_agents.get(group.desk, 0) + group.count
        desk_busy[group.desk] = desk_busy.get(group.desk, 0.0) + busy[gi]
    return Replication({level: tallies[i] for i, level in enumerate(levels)}, desk_agents, desk_busy,
                       period - warmup, len(callers), handled_events + len(callers))
