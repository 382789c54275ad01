"""Real calls through Asterisk: identity on the channel, queue priority, DTMF, faults."""

from __future__ import annotations

import asyncio
import subprocess

import pytest

from ami_bridge.client import AmiClient
from harness.waiting import until
from tests.e2e.conftest import HOTLINE, Events, Stack, load_demo, pause_all

Ami = tuple[AmiClient, Events]

# caller -> (tier, level, QUEUE_PRIO), from demo/ and the shipped policy.
DEMO_CALLERS = {
    "13800000001": ("highend", "highend_easyown", "60"),
    "13800000002": ("newsub", "newsub_mzone", "35"),
    "13800000003": ("campus", "campus", "30"),
    "13800000004": ("rural", "ordinary_easyown", "10"),
    "13800000005": ("normal", "gotone_vip", "70"),
    "13800000006": ("normal", "ordinary_mzone", "20"),
}


async def test_every_demo_caller_gets_its_identity_and_an_agent(stack: Stack, ami: Ami) -> None:
    _, events = ami
    callers = list(DEMO_CALLERS)
    for pair in (callers[0:2], callers[2:4], callers[4:6]):  # two agents: two calls at a time
        # "0" skips the menu's wait, so each call reaches the queue at once.
        results = await asyncio.gather(*(stack.call(c, digits="0", wait_ms=300, talk_ms=3000) for c in pair))
        assert [r.returncode for r in results] == [0, 0], [r.output for r in results]
    for caller, (tier, level, prio) in DEMO_CALLERS.items():
        channel = events.caller_channel(caller)
        variables = events.variables(channel["Uniqueid"])
        got = (variables.get("HOTLINE_TIER"), variables.get("HOTLINE_LEVEL"), variables.get("QUEUE_PRIO"))
        assert got == (tier, level, prio), caller
        assert variables["HOTLINE_BRIDGE"] == "SUCCESS"
        assert variables["HOTLINE_DEGRADED"] == "0"
        await events.wait("AgentConnect", Uniqueid=channel["Uniqueid"], within=5)
    rural = events.variables(events.caller_channel("13800000004")["Uniqueid"])
    # Chinese text and commas arrive intact through AGI quoting and MSet's argument escaping.
    assert rural["HOTLINE_GREETING"] == "尊敬的王站长,你好,有什么可以帮到您"
    assert rural["HOTLINE_TIER_LABEL"] == "农村"
    gotone = events.variables(events.caller_channel("13800000005")["Uniqueid"])
    assert gotone["HOTLINE_SKILL_CHAIN"] == "vip_desk,highend_desk,general"
    assert gotone["HOTLINE_FLAGS"] == "redlist"


async def test_higher_level_caller_is_served_first_though_it_joined_later(stack: Stack, ami: Ami) -> None:
    """Two levels, two queues sharing the agents: the heavier queue's caller gets the agent."""
    client, events = ami
    await pause_all(client, True)
    try:
        low = asyncio.create_task(stack.call("13800000004", digits="0", wait_ms=300, talk_ms=9000))  # ordinary, 10
        low_join = await events.wait("QueueCallerJoin", CallerIDNum="13800000004")
        high = asyncio.create_task(stack.call("13800000001", digits="0", wait_ms=300, talk_ms=6000))  # highend, 60
        high_join = await events.wait("QueueCallerJoin", CallerIDNum="13800000001")
        assert (low_join["Queue"], high_join["Queue"]) == ("hotline-ordinary_easyown", "hotline-highend_easyown")
        reply = await client.action({"Action": "QueuePause", "Interface": "PJSIP/agent3", "Paused": "false"})
        assert reply.get("Response") == "Success", reply
        first = await events.wait("AgentConnect", Uniqueid=high_join["Uniqueid"])
        assert first["Interface"] == "PJSIP/agent3"
        connects = [e["Uniqueid"] for e in events.find("AgentConnect")]
        assert low_join["Uniqueid"] not in connects[: connects.index(high_join["Uniqueid"])]
        assert (await high).returncode == 0
        assert (await low).returncode == 0
    finally:
        await pause_all(client, False)


@pytest.mark.parametrize("dtmf", ["info", "rfc4733"])
async def test_dtmf_through_two_menu_levels(stack: Stack, ami: Ami, dtmf: str) -> None:
    """1 (bill inquiry) in the main menu, then 2 (talk to billing) in the bill menu."""
    _, events = ami
    caller = "13800000003" if dtmf == "info" else "13800000006"
    result = await stack.call(caller, digits="12", dtmf=dtmf, wait_ms=400, gap_ms=2500, talk_ms=2500)
    assert result.returncode == 0, result.output
    channel = events.caller_channel(caller)
    variables = events.variables(channel["Uniqueid"])
    assert variables.get("HOTLINE_IVR_PATH") == "screen>welcome>main_menu>bill_menu>billing", variables
    assert (variables["HOTLINE_IVR_RESULT"], variables["HOTLINE_SERVICE"]) == ("transfer", "billing")
    # The caller waits in its access level's queue, with the priority fixed at entry.
    join = await events.wait("QueueCallerJoin", Uniqueid=channel["Uniqueid"], within=5)
    assert join["Queue"] == f"hotline-{variables['HOTLINE_LEVEL']}"


async def test_bridge_down_still_reaches_the_queue_as_normal(stack: Stack, ami: Ami) -> None:
    _, events = ami
    stack.bridge.stop()
    try:
        result = await stack.call("13800000001", digits="0", wait_ms=300, talk_ms=800)
    finally:
        stack.bridge.start()
    assert result.returncode == 0, result.output
    channel = events.caller_channel("13800000001")
    variables = events.variables(channel["Uniqueid"])
    # The FastAGI port was closed: AGI failed and the dialplan's fallback served the caller.
    assert variables["HOTLINE_BRIDGE"] == "FAILURE"
    assert (variables["HOTLINE_TIER"], variables["QUEUE_PRIO"], variables["HOTLINE_DEGRADED"]) == ("normal", "10", "1")
    await events.wait("AgentConnect", Uniqueid=channel["Uniqueid"], within=5)


async def test_redis_down_calls_connect_marked_degraded(stack: Stack, ami: Ami) -> None:
    _, events = ami
    stack.redis.stop()
    try:
        result = await stack.call("13800000001", digits="0", wait_ms=300, talk_ms=800)
    finally:
        stack.redis.start()
        load_demo(stack.redis.url)
    assert result.returncode == 0, result.output
    channel = events.caller_channel("13800000001")
    variables = events.variables(channel["Uniqueid"])
    assert variables["HOTLINE_BRIDGE"] == "SUCCESS"
    assert (variables["HOTLINE_TIER"], variables["HOTLINE_DEGRADED"]) == ("normal", "1")
    await events.wait("AgentConnect", Uniqueid=channel["Uniqueid"], within=5)
    # With Redis back, the next call is identified again.
    again = await stack.call("13800000004", wait_ms=300, talk_ms=300)
    assert again.returncode == 0
    assert events.variables(events.caller_channel("13800000004")["Uniqueid"])["HOTLINE_TIER"] == "rural"


async def test_an_agent_phone_that_registered_is_called_where_it_registered_from(stack: Stack, ami: Ami) -> None:
    """Production's agents' phones register (no fixed contact in pjsip.conf): agent3's did."""
    client, events = ami
    phone = stack.agents[2]
    contacts = stack.asterisk.cli("pjsip show contacts") or ""
    assert f"agent3/sip:agent3@127.0.0.1:{phone.sip_port}" in contacts, contacts
    await pause_all(client, True, ("agent1", "agent2"))
    try:
        result = await stack.call("13800000006", digits="0", wait_ms=300, talk_ms=1500)
    finally:
        await pause_all(client, False, ("agent1", "agent2"))
    assert result.returncode == 0, result.output
    channel = events.caller_channel("13800000006")
    connected = await events.wait("AgentConnect", Uniqueid=channel["Uniqueid"], within=5)
    assert connected["MemberName"] == "agent3"


async def test_a_caller_claiming_an_agents_name_must_prove_it(stack: Stack, ami: Ami) -> None:
    """Endpoints are identified by name before address: From agent1 is challenged, and without
    agent1's secret gets neither the agents' context nor the hotline."""
    _, events = ami
    result = await stack.call("agent1", exten="agent2", wait_ms=300, talk_ms=500, limit_s=10)
    assert result.returncode != 0
    assert "401" in result.output
    assert not [e for e in events.seen if e.get("Event") in ("Newchannel", "DialBegin", "QueueCallerJoin")
                and e.get("CallerIDNum") == "agent1"]


@pytest.mark.parametrize("exten", ["8613900000000", "agent1", "900"])
async def test_callers_reach_nothing_but_the_hotline(stack: Stack, ami: Ami, exten: str) -> None:
    """No toll fraud: any other number gets an announcement or a refusal, never an agent or a line."""
    _, events = ami
    await stack.call("13800000006", exten=exten, wait_ms=300, talk_ms=1500)
    mine = [e for e in events.seen if e.get("CallerIDNum") == "13800000006" or e.get("Exten") == exten]
    assert not [e for e in events.seen if e.get("Event") in ("AgentCalled", "DialBegin", "QueueCallerJoin")]
    assert all(e.get("Context") in (None, "from-caller") for e in mine)


async def test_hot_reload_between_two_calls(stack: Stack, ami: Ami) -> None:
    """New calls get the new flow version; a broken edit is refused and the running one serves."""
    _, events = ami
    first = await stack.call("13800000003", digits="5", wait_ms=400, talk_ms=1500)
    assert first.returncode == 0, first.output
    before = events.variables(events.caller_channel("13800000003")["Uniqueid"])
    assert before["HOTLINE_SERVICE"] == "complaints"

    flow_file = stack.bridge.flows_dir / "hotline.yaml"
    original = flow_file.read_text()
    try:
        flow_file.write_text(original.replace('"5": complaints', '"5": nowhere'))
        refused = await _reload(stack, expect=1)  # the engineer hears of the refusal in the exit code
        assert "1 running instance(s) heard it, 1 answered: refused; still serving" in refused
        await until(lambda: stack.bridge.log_lines("flow reload refused; the running version keeps serving"),
                    "the refusal in the bridge's log")

        flow_file.write_text(original.replace('"5": complaints', '"5": orders').replace('"4": orders',
                                                                                     '"4": complaints'))
        assert "1 answered: reloaded" in await _reload(stack)
        await until(lambda: stack.bridge.log_lines("flows reloaded"), "the reload in the bridge's log")
        second = await stack.call("13800000006", digits="5", wait_ms=400, talk_ms=1500)
        assert second.returncode == 0, second.output
        after = events.variables(events.caller_channel("13800000006")["Uniqueid"])
        assert after["HOTLINE_SERVICE"] == "orders"
        assert after["HOTLINE_FLOW_VERSION"] != before["HOTLINE_FLOW_VERSION"]
    finally:
        flow_file.write_text(original)
        await _reload(stack)


async def _reload(stack: Stack, expect: int = 0) -> str:
    """`hotline flows reload`, as an engineer runs it."""
    proc = await asyncio.create_subprocess_exec(HOTLINE, "flows", "reload", env=stack.bridge.env,
                                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out, _ = await proc.communicate()
    assert proc.returncode == expect, out
    return out.decode()


async def test_a_caller_waiting_in_the_queue_survives_a_restart_of_the_bridge(stack: Stack, ami: Ami) -> None:
    client, events = ami
    await pause_all(client, True)
    try:
        # The caller stays 12 s after pressing 0: the restart (stop, then a start that imports for
        # about 2 s), the unpause and the agent's answer must fit in it on a loaded machine too
        # (with 6 s the caller once hung up first during a full run).
        call = asyncio.create_task(stack.call("13800000002", digits="0", wait_ms=300, talk_ms=12000))
        joined = await events.wait("QueueCallerJoin", CallerIDNum="13800000002")
        stack.bridge.stop()
        stack.bridge.start()
        await pause_all(client, False)
        connected = await events.wait("AgentConnect", Uniqueid=joined["Uniqueid"], within=10)
        assert connected["Queue"] == joined["Queue"]
        assert (await call).returncode == 0
    finally:
        await pause_all(client, False)


def test_the_softphones_listen_on_loopback_only(stack: Stack) -> None:
    """SIPp's control socket too: one datagram from elsewhere must not be able to stop an agent."""
    sockets = subprocess.run(["ss", "-Hulpn"], capture_output=True, text=True, check=True).stdout.splitlines()
    sipp = [line.split()[3] for line in sockets if '"sipp"' in line]
    assert sipp, "no SIPp sockets seen"
    assert all(address.startswith("127.") for address in sipp), sipp
