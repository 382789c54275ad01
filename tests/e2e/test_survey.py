"""Measured service end to end: the post-call survey on real Asterisk, first-contact resolution
from repeat calls, each agent's KPIs against figures computed here from the call rows, and the
VIP desk re-staffed from them (Asterisk's own queue membership shows it)."""

from __future__ import annotations

import json
import subprocess
from datetime import timedelta
from functools import partial
from typing import Any

import asyncpg
import pytest

from ami_bridge.client import AmiClient
from harness.sipp import SippAgent
from harness.waiting import until
from hotline_core.policy import load_policy
from tests.e2e.conftest import HOTLINE, ROSTER, Events, Stack, pause_all
from tests.e2e.test_board import metrics

Ami = tuple[AmiClient, Events]
AGENT_TALK_MS = 2000
AFTER_MS = AGENT_TALK_MS + 2500  # the survey's question is playing by then

# (caller, agent who answers, what the caller does at the survey): a key, "" (waits it out), or
# None (hangs up during the question). A's second call comes back inside the FCR window.
A, B, C, D, E = "13900000101", "13900000102", "13900000103", "13900000104", "13900000105"
PLAN = [(A, "agent1", "1"), (A, "agent1", "2"), (B, "agent1", "3"), (C, "agent2", "1"), (D, "agent2", None),
        (E, "agent3", "")]
EXPECTED = {  # per call, in order: survey result, key, label
    0: ("answered", "1", "满意"), 1: ("answered", "2", "一般"), 2: ("answered", "3", "不满意"),
    3: ("answered", "1", "满意"), 4: ("hung up", None, None), 5: ("no answer", None, None)}


def cli(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**stack.bridge.env, "HOTLINE_DATABASE_URL": stack.postgres.url()}
    return subprocess.run([HOTLINE, *args], env=env, capture_output=True, text=True, timeout=60, check=False)


async def place(stack: Stack, caller: str, action: str | None) -> None:
    if action is None:  # hangs up a second into the survey's question
        result = await stack.call(caller, digits="0", wait_ms=300, talk_ms=AFTER_MS)
    else:
        result = await stack.call(caller, digits="0", wait_ms=300, survey=action, survey_after_ms=AFTER_MS,
                                  patience_ms=40_000, limit_s=60)
    assert result.returncode == 0, result.output


def independent_kpis(calls: list[dict[str, Any]], orders: list[dict[str, Any]], window: timedelta) -> dict[str, Any]:
    """Per agent, from the call rows alone: answered, surveyed, satisfaction, FCR."""
    out: dict[str, dict[str, Any]] = {}
    for call in calls:
        if call["queue_outcome"] != "answered" or not call["agent"]:
            continue
        mine = out.setdefault(call["agent"], {"answered": 0, "surveyed": 0, "satisfied": 0, "decided": 0,
                                              "resolved": 0})
        mine["answered"] += 1
        if call["survey_result"] == "answered":
            mine["surveyed"] += 1
            mine["satisfied"] += call["survey"] == "1"  # the shipped scale: only 1 is satisfied
        if call["number"] is None:
            continue
        mine["decided"] += 1
        came_back = any(o["number"] == call["number"] and o["queue_outcome"] == "answered"
                        and call["started_at"] < o["started_at"] <= call["started_at"] + window for o in calls)
        complained = any(call["started_at"] <= w["created_at"] <= call["started_at"] + window
                         and (w["linkedid"] == call["linkedid"] or (w["linkedid"] is None
                                                                    and w["number"] == call["number"]))
                         for w in orders)
        mine["resolved"] += not (came_back or complained)
    return {agent: {"calls": m["answered"], "surveyed": m["surveyed"],
                    "csat": round(m["satisfied"] / m["surveyed"], 4) if m["surveyed"] else None,
                    "fcr": round(m["resolved"] / m["decided"], 4) if m["decided"] else None}
            for agent, m in out.items()}


async def vip_penalty(client: AmiClient, queue: str, interface: str) -> int | None:
    status = await client.action({"Action": "QueueStatus", "Queue": queue}, as_list=True)
    member = next((m for m in status if m.get("Event") == "QueueMember" and m.get("StateInterface") == interface),
                  None)
    return None if member is None else int(member["Penalty"])


@pytest.mark.timeout(420)
async def test_surveys_and_repeat_calls_measure_the_agents_and_restaff_the_vip_desk(stack: Stack, ami: Ami) -> None:
    client, _ = ami
    policy = load_policy(stack.bridge.policy_file)
    vip_queue = policy.queue("gotone_vip")
    assert await vip_penalty(client, vip_queue, "PJSIP/agent1") == 0  # agent1 sits at the VIP desk
    run_dir = stack.agents[0].run_dir
    timed = [SippAgent(a.name, a.sip_port, a.media_port, run_dir, talk_ms=AGENT_TALK_MS) for a in stack.agents]
    for agent in stack.agents:
        agent.stop()
    for agent in timed:
        agent.start()
    conn = await asyncpg.connect(stack.postgres.url())
    try:
        uniqueids: list[str] = []
        for caller, answering, action in PLAN:
            await pause_all(client, True, tuple(a.name for a in stack.agents if a.name != answering))
            try:
                await place(stack, caller, action)
            finally:
                await pause_all(client, False)

            async def latest(number: str) -> Any:
                found = await conn.fetchval(
                    "SELECT call_id FROM calls WHERE number = $1 AND agent IS NOT NULL "
                    "AND call_id <> ALL($2::text[]) ORDER BY started_at DESC LIMIT 1", number, uniqueids)
                return found

            uniqueids.append(await until(partial(latest, "86" + caller), f"the record of {caller}'s call", 20))
        # Every survey reaches its call's record with the agent who answered.
        for index, uid in enumerate(uniqueids):

            async def surveyed(call_id: str) -> Any:
                found = await conn.fetchrow(
                    "SELECT agent, survey_agent, survey_result, survey, survey_label FROM calls "
                    "WHERE call_id = $1 AND survey_result IS NOT NULL", call_id)
                return found

            row: asyncpg.Record = await until(partial(surveyed, uid), f"the survey of call {index}", 20)
            assert (row["survey_result"], row["survey"], row["survey_label"]) == EXPECTED[index], index
            assert row["agent"] == row["survey_agent"] == PLAN[index][1]
        story = json.loads(cli(stack, "calls", "why", uniqueids[2], "--json").stdout)
        assert (story["survey"], story["survey_label"]) == ("3", "不满意")
        # First-contact verdicts once the (36 s) window has passed: A's first call came back.
        await until(lambda: conn.fetchval(
            "SELECT count(*) = 0 FROM calls WHERE call_id = ANY($1::text[]) AND fcr IS NULL", uniqueids),
            "the first-contact verdicts", 120, every=2)
        verdicts = {r["call_id"]: r["fcr"] for r in await conn.fetch(
            "SELECT call_id, fcr FROM calls WHERE call_id = ANY($1::text[])", uniqueids)}
        assert [verdicts[u] for u in uniqueids] == [False, True, True, True, True, True]
        await until(lambda: conn.fetchval("SELECT count(*) = 0 FROM dirty_hours"), "the rollup", 30, every=1)
        calls = [dict(r) for r in await conn.fetch(
            "SELECT call_id, linkedid, number, started_at, queue_outcome, agent, survey_result, survey FROM calls")]
        orders = [dict(r) for r in await conn.fetch("SELECT linkedid, number, created_at FROM work_orders")]
    finally:
        await conn.close()
        for agent in timed:
            agent.stop()
        for agent in stack.agents:
            agent.start()
    expected = independent_kpis(calls, orders, timedelta(hours=policy.measurement.fcr_window_hours))
    done = cli(stack, "agents", "kpis", "--format", "json")
    assert done.returncode == 0, done.stderr
    measured = {row["agent"]: row for row in json.loads(done.stdout)}
    for agent_id, figures in expected.items():
        assert {k: measured[agent_id][k] for k in figures} == figures, agent_id
    assert measured["agent1"]["qualified"] is False
    assert any(r.startswith("satisfaction 33% < 95%") for r in measured["agent1"]["reasons"])
    # Today's satisfaction by level, as the report and Prometheus (the board's source) give it.
    report = cli(stack, "report", "--by", "level", "--format", "json")
    assert report.returncode == 0, report.stderr
    rated = {row["level"]: row for row in json.loads(report.stdout) if row["surveyed"]}
    assert sum(row["surveyed"] for row in rated.values()) >= 4
    scraped = await metrics(stack)
    for level, row in rated.items():
        assert scraped[f'hotline_level_surveyed_today{{level="{level}"}}'] == row["surveyed"]
        assert scraped[f'hotline_level_satisfaction_today{{level="{level}"}}'] == pytest.approx(row["csat"])

    mark = stack.bridge.log_mark()
    applied = cli(stack, "agents", "desks", "--measured", "--apply", "--as", "e2e-supervisor")
    assert applied.returncode == 0, applied.stderr
    assert "agent1       vip_desk -> " in applied.stdout
    try:
        await until(lambda: stack.bridge.applied_since(mark), "the bridge to re-seat the desks", 20)
        penalty = await vip_penalty(client, vip_queue, "PJSIP/agent1")
        assert penalty is not None
        assert penalty > 0  # rung only after the VIP desk's own agents now
        conn = await asyncpg.connect(stack.postgres.url())
        try:
            recorded = await conn.fetchrow("SELECT applied_by, changes FROM desk_evaluations "
                                           "WHERE applied_by = 'e2e-supervisor'")
        finally:
            await conn.close()
        assert recorded is not None
        assert {m["agent"]: m["leaves"] for m in json.loads(recorded["changes"])["moves"]}["agent1"] == "vip_desk"
    finally:
        # The roster as the other tests know it.
        roster = run_dir / "roster.csv"
        roster.write_text(ROSTER, encoding="utf-8")
        mark = stack.bridge.log_mark()
        assert cli(stack, "agents", "import", str(roster)).returncode == 0
        await until(lambda: stack.bridge.applied_since(mark), "the roster back", 20)
