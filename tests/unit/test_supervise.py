"""The supervisor on real asyncio tasks: restarts with backoff, reports, stops cleanly."""

from __future__ import annotations

import asyncio

import pytest
from structlog.testing import capture_logs

from harness.waiting import until
from hotline_core.metrics import Metrics
from hotline_core.supervise import Backoff, Supervisor

FAST = Backoff(first_s=0.01, factor=2.0, max_s=0.05, healthy_after_s=0.3, failing_after=3)


def test_backoff_grows_to_its_ceiling() -> None:
    backoff = Backoff(first_s=1.0, factor=2.0, max_s=60.0)
    assert [backoff.delay(n) for n in (1, 2, 3, 6, 7, 30)] == [1.0, 2.0, 4.0, 32.0, 60.0, 60.0]


def sample(metrics: Metrics, name: str, component: str) -> float | None:
    return metrics.registry.get_sample_value(name, {"component": component})


async def test_a_loop_that_fails_once_is_logged_with_its_name_and_traceback_and_restarted() -> None:
    metrics = Metrics()
    runs: list[int] = []
    seen: asyncio.Queue[int] = asyncio.Queue()

    async def bridge() -> None:
        runs.append(len(runs))
        await seen.put(len(runs))
        if len(runs) == 1:
            raise KeyError("status")  # what a roster entry missing a field raised
        await asyncio.Event().wait()

    supervisor = Supervisor(metrics, FAST)
    with capture_logs() as logs:
        supervisor.start("ami bridge", bridge)
        assert await asyncio.wait_for(seen.get(), 1) == 1
        assert await asyncio.wait_for(seen.get(), 1) == 2  # back within its backoff
    failed = [e for e in logs if e["event"] == "component failed; restarting"]
    assert len(failed) == 1
    assert failed[0]["component"] == "ami bridge"
    assert isinstance(failed[0]["exc_info"], KeyError)
    assert sample(metrics, "hotline_component_restarts_total", "ami bridge") == 1
    assert sample(metrics, "hotline_component_up", "ami bridge") == 1
    assert supervisor.down() == []
    assert await supervisor.stop(1.0) == []
    assert sample(metrics, "hotline_component_up", "ami bridge") == 0


async def test_a_loop_that_keeps_failing_is_reported_as_failing_not_spun() -> None:
    metrics = Metrics()
    starts = 0

    async def broken() -> None:
        nonlocal starts
        starts += 1
        raise RecursionError("maximum recursion depth exceeded")

    supervisor = Supervisor(metrics, FAST)
    with capture_logs() as logs:
        supervisor.start("flow reloads", broken)
        await asyncio.sleep(0.4)
    # Waits of 0.01, 0.02, 0.04, then 0.05 each: about ten starts in 0.4 s, not thousands.
    assert 5 <= starts <= 12, starts
    [down] = supervisor.down()
    assert down.startswith("flow reloads failing (")
    assert "RecursionError: maximum recursion depth exceeded" in down
    tracebacks = [e for e in logs if e["event"] == "component failed; restarting"]
    assert len(tracebacks) == 1  # the same failure again is not logged again
    assert len([e for e in logs if e["event"] == "component keeps failing; retried at a slower pace"]) == 1
    await supervisor.stop(1.0)


async def test_a_failing_component_counts_as_recovered_once_a_run_lasts() -> None:
    fail_times = 4

    async def flaky() -> None:
        nonlocal fail_times
        if fail_times:
            fail_times -= 1
            raise ConnectionError("database went away")
        await asyncio.Event().wait()

    supervisor = Supervisor(None, FAST)
    supervisor.start("records outbox", flaky)
    [down] = await until(lambda: [d for d in supervisor.down() if " failing " in d], "it to be reported failing", 2,
                         every=0.01)
    assert down.startswith("records outbox failing (3 failures in a row")
    failing_since = asyncio.get_running_loop().time()
    await until(lambda: not supervisor.down(), "the component to count as recovered", 3, every=0.01)
    # Not before a run has lasted healthy_after_s.
    assert asyncio.get_running_loop().time() - failing_since >= FAST.healthy_after_s - FAST.max_s
    await supervisor.stop(1.0)


async def test_a_loop_that_returns_is_restarted_too() -> None:
    runs = 0

    async def ends() -> None:
        nonlocal runs
        runs += 1

    supervisor = Supervisor(None, FAST)
    with capture_logs() as logs:
        supervisor.start("live board", ends)
        await asyncio.sleep(0.05)
    assert runs >= 2
    assert "returned" in str(logs[0]["exc_info"])
    await supervisor.stop(1.0)


async def test_stop_is_bounded_and_names_what_would_not_end() -> None:
    async def stubborn() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            await asyncio.sleep(0.6)  # swallows the cancellation and lingers, as some client libraries have

    async def polite() -> None:
        await asyncio.Event().wait()

    supervisor = Supervisor(None, FAST)
    supervisor.start("stubborn", stubborn)
    supervisor.start("polite", polite)
    await asyncio.sleep(0)
    loop = asyncio.get_running_loop()
    began = loop.time()
    assert await supervisor.stop(0.2) == ["stubborn"]
    assert loop.time() - began < 0.5
    assert {h.name: h.state for h in supervisor.health()} == {"stubborn": "stopped", "polite": "stopped"}
    await asyncio.sleep(0.6)  # let it end before the test's loop closes


async def test_one_name_is_supervised_once() -> None:
    supervisor = Supervisor(None, FAST)
    supervisor.start("sms worker", lambda: asyncio.Event().wait())
    with pytest.raises(ValueError, match="already supervised"):
        supervisor.start("sms worker", lambda: asyncio.Event().wait())
    await supervisor.stop(1.0)
