"""Call records end to end: a scripted batch of real calls (answered, overflowed, abandoned,
released, ended in the IVR), with `hotline serve` stopped while a caller waits and PostgreSQL
stopped during calls; the report must equal what Asterisk's raw queue_log lines say."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from collections import defaultdict
from typing import Any

import asyncpg

from ami_bridge.client import AmiClient
from harness.waiting import until
from hotline_core.policy import load_policy
from tests.e2e.conftest import HOTLINE, Events, Stack, pause_all

Ami = tuple[AmiClient, Events]
FALLBACK_LEVEL = "ordinary_easyown"  # the dialplan's level when the bridge is down


def hotline(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HOTLINE_DATABASE_URL": stack.postgres.url(), "HOTLINE_REDIS_URL": stack.redis.url,
           "HOTLINE_POLICY_FILE": str(stack.bridge.policy_file)}
    return subprocess.run([HOTLINE, *args], env=env, capture_output=True, text=True, timeout=60, check=False)


def from_queue_log(text: str, thresholds: dict[str, int]) -> dict[str, dict[str, Any]]:
    """Per level, straight from Asterisk's lines, independently of hotline's reader."""
    calls: dict[str, dict[str, Any]] = defaultdict(dict)
    for line in text.splitlines():
        _at, callid, queue, _agent, event, *data = line.split("|")
        if callid == "NONE" or not queue.startswith("hotline"):
            continue
        call = calls[callid]
        call.setdefault("level", queue.removeprefix("hotline-") if queue != "hotline" else FALLBACK_LEVEL)
        if event in ("ENTERQUEUE", "HOTLINE_REFUSED"):
            call["offered"] = True
        if event == "HOTLINE_REFUSED":
            call["end"] = "released"
        elif event == "CONNECT":
            call["end"], call["wait"] = "answered", int(data[0])
        elif event == "ABANDON":
            call["end"] = "abandoned"
        elif event in ("EXITWITHTIMEOUT", "EXITEMPTY"):
            call["end"] = "released"
    levels: dict[str, dict[str, Any]] = defaultdict(lambda: {"offered": 0, "answered": 0, "abandoned": 0,
                                                             "released": 0, "in_sl": 0, "waits": 0})
    for call in calls.values():
        if not call.get("offered"):
            continue
        figures = levels[call["level"]]
        figures["offered"] += 1
        if call.get("end") in ("answered", "abandoned", "released"):
            figures[call["end"]] += 1
        if call.get("end") == "answered":
            figures["waits"] += call["wait"]
            figures["in_sl"] += call["wait"] <= thresholds[call["level"]]
    return levels


async def caught_up(stack: Stack, within: float = 30.0) -> None:
    """Until the reader has the whole file and the outbox is empty."""
    conn = await asyncpg.connect(stack.postgres.url())

    async def behind() -> tuple[int, int, str]:
        offset = await conn.fetchval("SELECT line_offset FROM ingest_checkpoints WHERE source = 'e2e'")
        size = stack.asterisk.queue_log.stat().st_size if stack.asterisk.queue_log.exists() else 0
        outbox = await asyncio.to_thread(subprocess.run, ["redis-cli", "-u", stack.redis.url, "XLEN", "hl:records:outbox"],
                                         capture_output=True, text=True, check=False)
        return offset, size, outbox.stdout.strip()

    async def done() -> bool:
        offset, size, outbox = await behind()
        return offset == size and outbox == "0"

    try:
        await until(done, "the reader to have the whole queue_log and the outbox to be empty", within, every=0.3)
    finally:
        await conn.close()


async def test_the_report_equals_asterisks_own_queue_log(stack: Stack, ami: Ami) -> None:
    client, events = ami
    # Answered at its desk (GoTone VIP) and ended in the IVR (a blacklisted caller is refused).
    await stack.call("13800000005", wait_ms=300, talk_ms=1500)
    await stack.call("13800000007", wait_ms=300, talk_ms=4000)
    # Overflowed: the high-value desk is busy.
    await pause_all(client, True, ("agent2",))
    try:
        await stack.call("13800000001", digits="0", wait_ms=300, talk_ms=1500)
    finally:
        await pause_all(client, False, ("agent2",))
    await pause_all(client, True)
    try:
        # Released after the level's maximum wait (4 s for ordinary M-Zone here) and abandoned
        # after about two seconds in the queue (a short abandon).
        await asyncio.gather(stack.call("13800000006", digits="0", wait_ms=300, talk_ms=9000),
                             stack.call("13800000004", digits="0", wait_ms=300, talk_ms=2500))
        # `hotline serve` stops while this caller waits; an agent answers it meanwhile.
        waiting = asyncio.create_task(stack.call("13800000008", digits="0", wait_ms=300, talk_ms=7000))
        await events.wait("QueueCallerJoin", within=15, CallerIDNum="13800000008")
        stack.bridge.stop()
    finally:
        await pause_all(client, False)
    await waiting
    stack.bridge.start()
    # PostgreSQL away during two calls.
    stack.postgres.stop()
    try:
        await stack.call("13800000002", digits="0", wait_ms=300, talk_ms=1500)
        await stack.call("13800000001", digits="0", wait_ms=300, talk_ms=1500)
    finally:
        stack.postgres.start()
    await caught_up(stack)

    policy = load_policy(stack.bridge.policy_file)
    thresholds = {lv.name: lv.service_level_seconds for lv in policy.levels}
    expected = from_queue_log(stack.asterisk.queue_log.read_text(), thresholds)
    done = hotline(stack, "report", "--by", "level", "--format", "json", "--from",
                   time.strftime("%Y-%m-%d", time.localtime(time.time() - 86400)),
                   "--to", time.strftime("%Y-%m-%d", time.localtime(time.time() + 86400)))
    assert done.returncode == 0, done.stderr
    report = {row["level"]: row for row in json.loads(done.stdout)}
    assert set(report) == set(thresholds)  # every level, with zeros where no call came
    for level, row in report.items():
        want = expected.get(level, {"offered": 0, "answered": 0, "abandoned": 0, "released": 0, "in_sl": 0,
                                    "waits": 0})
        got = {k: row[k] for k in ("offered", "answered", "abandoned", "released")}
        assert got == {k: want[k] for k in got}, level
        if want["offered"]:
            assert row["service_level"] == round(want["in_sl"] / want["offered"], 4), level
        if want["answered"]:
            assert row["asa_s"] == round(want["waits"] / want["answered"], 1), level
    assert expected["ordinary_mzone"]["released"] >= 1
    assert expected[FALLBACK_LEVEL]["abandoned"] >= 1
    assert report["highend_easyown"]["overflow_share"] > 0

    by_tier = {row["tier"]: row for row in json.loads(hotline(stack, "report", "--format", "json").stdout)}
    assert set(by_tier) == {"highend", "newsub", "campus", "rural", "normal"}
    assert by_tier["normal"]["ivr_only"] >= 1  # the refused blacklisted caller

    # The call that waited while `hotline serve` was down: recorded once, with its decision.
    story = json.loads(hotline(stack, "calls", "why", "13800000008", "--json").stdout)
    assert (story["tier"], story["level"], story["outcome"]) == ("highend", "highend_mzone", "answered")
    conn = await asyncpg.connect(stack.postgres.url())
    try:
        assert await conn.fetchval("SELECT count(*) FROM calls WHERE number = '8613800000008'") >= 1
        assert await conn.fetchval("SELECT count(*) FROM calls WHERE call_id = $1", story["uniqueid"]) == 1
        # The calls made while PostgreSQL was down are there, with hotline's decision.
        newsub = await conn.fetchrow("SELECT tier, outcome FROM calls WHERE number = '8613800000002' "
                                     "ORDER BY started_at DESC LIMIT 1")
        assert dict(newsub) == {"tier": "newsub", "outcome": "answered"}
    finally:
        await conn.close()
    why = hotline(stack, "calls", "why", "13800000001")
    assert "lookup:   in brand, highend" in why.stdout, why.stdout
    assert "outcome:  answered" in why.stdout
