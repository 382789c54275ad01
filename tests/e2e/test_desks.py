"""Virtual desks and overflow on real Asterisk, staffed by the AMI bridge from the roster."""

from __future__ import annotations

import asyncio

from ami_bridge.client import AmiClient
from harness.waiting import until_sync
from tests.e2e.conftest import Events, Stack, pause_all, reregister

Ami = tuple[AmiClient, Events]


async def members(client: AmiClient, queue: str) -> dict[str, int]:
    status = await client.action({"Action": "QueueStatus", "Queue": queue}, as_list=True)
    return {m["StateInterface"]: int(m["Penalty"]) for m in status if m.get("Event") == "QueueMember"}


async def test_highend_caller_is_answered_by_the_highend_desk(stack: Stack, ami: Ami) -> None:
    client, events = ami
    assert await members(client, "hotline-highend_easyown") == {"PJSIP/agent2": 0, "PJSIP/agent1": 1,
                                                                  "PJSIP/agent3": 1}
    result = await stack.call("13800000001", digits="0", wait_ms=300, talk_ms=1500)
    assert result.returncode == 0, result.output
    channel = events.caller_channel("13800000001")
    connected = await events.wait("AgentConnect", Uniqueid=channel["Uniqueid"], within=5)
    assert (connected["Queue"], connected["Interface"]) == ("hotline-highend_easyown", "PJSIP/agent2")


async def test_desk_busy_the_call_overflows_to_the_next_group(stack: Stack, ami: Ami) -> None:
    client, events = ami
    await pause_all(client, True, ("agent2",))
    try:
        result = await stack.call("13800000001", digits="0", wait_ms=300, talk_ms=1500)
    finally:
        await pause_all(client, False, ("agent2",))
    assert result.returncode == 0, result.output
    channel = events.caller_channel("13800000001")
    connected = await events.wait("AgentConnect", Uniqueid=channel["Uniqueid"], within=5)
    assert connected["Queue"] == "hotline-highend_easyown"  # same queue: its place and priority kept
    assert connected["Interface"] in ("PJSIP/agent1", "PJSIP/agent3")
    assert int(connected["HoldTime"]) <= 2  # overflowed at once, not after a timer


async def test_campus_desk_only_in_its_months(stack: Stack, ami: Ami) -> None:
    client, events = ami
    try:
        for when, chain, desk_members in (("2026-09-15T10:00:00+08:00", "campus_desk,general", {"PJSIP/agent3": 0}),
                                          ("2026-11-16T10:00:00+08:00", "general", {})):
            mark = stack.bridge.log_mark()
            stack.bridge.stop()
            stack.bridge.frozen_time = when
            stack.bridge.start()
            await asyncio.to_thread(until_sync, lambda m=mark: stack.bridge.applied_since(m), "the desks for " + when, 20)
            campus = await members(client, "hotline-campus")
            assert {k: v for k, v in campus.items() if v == 0} == (desk_members or campus)
            events.seen.clear()
            result = await stack.call("13800000003", digits="0", wait_ms=300, talk_ms=1200)
            assert result.returncode == 0, result.output
            channel = events.caller_channel("13800000003")
            assert events.variables(channel["Uniqueid"])["HOTLINE_SKILL_CHAIN"] == chain
            connected = await events.wait("AgentConnect", Uniqueid=channel["Uniqueid"], within=5)
            if desk_members:
                assert connected["Interface"] == "PJSIP/agent3"
    finally:
        stack.bridge.stop()
        stack.bridge.frozen_time = None
        stack.bridge.start()


async def test_every_agent_busy_beyond_the_limit_the_caller_hears_the_release(stack: Stack, ami: Ami) -> None:
    client, events = ami
    await pause_all(client, True)
    try:
        # Ordinary M-Zone callers wait at most 4 s in the end-to-end policy.
        result = await stack.call("13800000006", digits="0", wait_ms=300, talk_ms=9000)
    finally:
        await pause_all(client, False)
    channel = events.caller_channel("13800000006")
    variables = events.variables(channel["Uniqueid"])
    assert variables["QUEUESTATUS"] == "TIMEOUT"
    played = [e for e in events.find("Newexten", Uniqueid=channel["Uniqueid"]) if e.get("Application") == "Playback"]
    assert played, "no release announcement"
    assert played[-1]["AppData"] == "all-circuits-busy-now&vm-goodbye"
    assert not events.find("AgentConnect", Uniqueid=channel["Uniqueid"])
    assert "unexpected BYE" in result.output  # Asterisk released the caller, not the other way round


async def test_after_an_asterisk_restart_the_bridge_reapplies_the_desks(stack: Stack, ami: Ami) -> None:
    mark = stack.bridge.log_mark()
    await asyncio.to_thread(stack.asterisk.restart)
    await asyncio.to_thread(reregister, stack)
    await asyncio.to_thread(until_sync, lambda: stack.bridge.applied_since(mark), "the desks after the restart", 30)
    client = AmiClient("127.0.0.1", stack.asterisk.deployment.ami_port, "hotline", "e2e-secret")
    await client.connect()
    try:
        assert (await members(client, "hotline-highend_easyown"))["PJSIP/agent2"] == 0
    finally:
        await client.close()
    assert stack.bridge.log_lines("AMI link lost; reconnecting")
