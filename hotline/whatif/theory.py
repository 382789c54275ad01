"""Queueing formulas the simulator is checked against, and `whatif staff` starts its search from.

Erlang C (M/M/n): the probability of waiting, the service level and the ASA.
Erlang A (M/M/n+M, exponential patience): the probability of abandoning and the mean wait, from
the birth-death chain itself (exact up to a tail truncated where its mass is negligible).
Non-preemptive priorities on one group of n agents with one exponential service rate (Cobham):
the mean wait of each class. All pure.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def erlang_b(n: int, load: float) -> float:
    """Blocking probability of n servers offered `load` erlangs (the stable recursion)."""
    b = 1.0
    for k in range(1, n + 1):
        b = load * b / (k + load * b)
    return b


def erlang_c(n: int, load: float) -> float:
    """Probability that a caller waits, n agents, `load` = arrival rate x mean handle time."""
    if load >= n:
        return 1.0
    b = erlang_b(n, load)
    return n * b / (n - load * (1 - b))


def erlang_c_service_level(n: int, load: float, handle_s: float, threshold_s: float) -> float:
    """Share of callers answered within `threshold_s`."""
    if load >= n:
        return 0.0
    return 1 - erlang_c(n, load) * math.exp(-(n - load) * threshold_s / handle_s)


def erlang_c_asa(n: int, load: float, handle_s: float) -> float:
    """Mean wait of all callers (those answered at once count zero)."""
    if load >= n:
        return math.inf
    return erlang_c(n, load) * handle_s / (n - load)


def erlang_a(n: int, rate: float, handle_s: float, patience_s: float) -> tuple[float, float, float]:
    """(probability of waiting, probability of abandoning, mean time in queue of all callers)
    for M/M/n+M: `rate` calls per second, exponential handle time and patience."""
    mu, theta = 1 / handle_s, 1 / patience_s
    # Unnormalised stationary probabilities p_k of k callers in the system, by the cut equations.
    probs = [1.0]
    k = 0
    while True:
        k += 1
        death = min(k, n) * mu + max(k - n, 0) * theta
        probs.append(probs[-1] * rate / death)
        if k > n and probs[-1] < 1e-16 * sum(probs):
            break
    total = sum(probs)
    waiting = sum(probs[n:]) / total
    queued = sum((j - n) * p for j, p in enumerate(probs) if j > n) / total
    abandon = theta * queued / rate
    return waiting, abandon, queued / rate


def priority_waits(n: int, rates: Sequence[float], handle_s: float) -> list[float]:
    """Mean wait of each class, highest priority first, non-preemptive, n agents, one exponential
    handle time (Cobham's formula on Erlang C): W_k = C(n, a) / (n mu (1 - s_{k-1}) (1 - s_k)),
    s_k the load share of classes 1..k."""
    mu = 1 / handle_s
    load = sum(rates) / mu
    c = erlang_c(n, load)
    waits = []
    before = 0.0
    for rate in rates:
        upto = before + rate / (n * mu)
        waits.append(c / (n * mu * (1 - before) * (1 - upto)) if upto < 1 else math.inf)
        before = upto
    return waits

