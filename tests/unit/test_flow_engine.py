"""The flow interpreter and simulator, by value: identity and time in, steps and outcome out."""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from agi.ivr import FlowRegistry
from ivr_flows.engine import Ask, Caller, PlayPrompt, matches, run
from ivr_flows.graph import dot, mermaid
from ivr_flows.model import Condition, Flow
from ivr_flows.simulate import simulate
from ivr_flows.validate import load_flows

ROOT = Path(__file__).resolve().parents[2]
ZONE = ZoneInfo("Asia/Shanghai")
SHIPPED = load_flows(ROOT / "ivr_flows" / "flows").flows


def who(**identity: Any) -> dict[str, Any]:
    base = {"number": "8613800000006", "tier": "normal", "brand": "mzone", "level": "ordinary_mzone", "label": "普通",
            "redlist": False, "blacklist": False, "degraded": False, "name": "", "queue": "hotline-ordinary_mzone"}
    base.update(identity)
    return base


def caller(at: str = "2026-11-23T10:00", **identity: Any) -> Caller:
    return Caller(who(**identity), datetime.fromisoformat(at).replace(tzinfo=ZONE))


def test_conditions() -> None:
    monday_10 = caller("2026-11-23T10:00", tier="highend", level="highend_mzone", blacklist=True)
    assert matches(Condition(tiers=("highend", "newsub")), monday_10, {})
    assert not matches(Condition(tiers=("campus",)), monday_10, {})
    assert matches(Condition(flags=("blacklist",)), monday_10, {})
    assert not matches(Condition(flags=("blacklist", "redlist")), monday_10, {})
    assert matches(Condition(hours="08:00-20:00", weekdays=(1, 2, 3, 4, 5)), monday_10, {})
    assert not matches(Condition(hours="08:00-10:00"), monday_10, {})  # the end is exclusive
    assert matches(Condition(hours="00:00-24:00"), caller("2026-11-23T23:59"), {})
    assert not matches(Condition(weekdays=(6, 7)), monday_10, {})
    assert matches(Condition(months=(11,)), monday_10, {})
    assert matches(Condition(dates=("2026-11-23",)), monday_10, {})
    assert matches(Condition(vars={"LANG": "en"}), monday_10, {"LANG": "en"})
    assert not matches(Condition(vars={"LANG": "en"}), monday_10, {})


def test_vip_fast_path() -> None:
    steps, outcome = simulate(SHIPPED, "hotline", caller(level="gotone_vip", brand="gotone"), [])
    assert (outcome.kind, outcome.service) == ("transfer", "vip")
    assert outcome.path == ("hotline:screen", "hotline:vip_welcome", "hotline:vip_agent")
    assert not any(s.startswith("menu") for s in steps)


def test_blacklisted_callers_hear_the_refusal_and_are_released() -> None:
    steps, outcome = simulate(SHIPPED, "hotline", caller(blacklist=True, tier="highend"), ["0"])
    assert outcome.kind == "hangup"
    assert steps[-1] == "play ss-noservice"


def test_two_menu_levels_to_billing() -> None:
    steps, outcome = simulate(SHIPPED, "hotline", caller(), ["1", "2"])
    assert (outcome.kind, outcome.service, outcome.queue) == ("transfer", "billing", "hotline-ordinary_mzone")
    assert [s for s in steps if s.startswith("menu")] == [
        "menu demo-enterkeywords (up to 1 digit(s)): caller presses 1",
        "menu beep (up to 1 digit(s)): caller presses 2",
    ]


def test_bill_summary_by_sms_then_goodbye() -> None:
    steps, outcome = simulate(SHIPPED, "hotline", caller(label="普通"), ["1", "1"])
    assert outcome.kind == "hangup"
    assert "SMS to the caller: 普通客户您好:您本月账单已生成,详情请登录掌上营业厅查询。" in steps


def test_silence_and_wrong_keys_use_the_retries_then_an_agent() -> None:
    steps, outcome = simulate(SHIPPED, "hotline", caller(), ["", "9", ""])
    assert (outcome.kind, outcome.service) == ("transfer", "general")
    assert sum(s.startswith("menu demo-enterkeywords") for s in steps) == 3
    assert steps.count("play please-try-again") == 2  # not after the last attempt
    assert "  hotline:main_menu: retries used up -> agent" in steps


def test_rural_liaisons_hear_their_own_welcome() -> None:
    steps, _ = simulate(SHIPPED, "hotline", caller(tier="rural", level="ordinary_easyown"), ["0"])
    assert steps[1] == "play hello-world"


def test_a_digit_pressed_during_a_prompt_answers_the_next_menu() -> None:
    walk = run(SHIPPED, "hotline", caller())
    action = walk.send(None)
    while not isinstance(action, PlayPrompt):
        action = walk.send(None)
    reply: str | None = "5"  # pressed during the welcome: the main menu is not played at all
    asked = []
    try:
        while True:
            action = walk.send(reply)
            reply = None
            asked.append(isinstance(action, Ask))
    except StopIteration as done:
        outcome = done.value
    assert outcome.service == "complaints"
    assert not any(asked)


def flow_of(nodes: dict[str, Any], start: str = "a") -> dict[str, Flow]:
    return {"t": Flow.model_validate({"flow": "t", "start": start, "nodes": nodes})}


def test_multi_digit_input_stored_and_branch_on_a_variable() -> None:
    flows = flow_of({
        "a": {"type": "menu", "prompt": "beep", "digits": 4, "store": "PIN", "options": {"1234": "ok"},
              "on_failure": "bye"},
        "ok": {"type": "set", "var": "VERIFIED", "value": "yes", "next": "check"},
        "check": {"type": "branch", "rules": [{"when": {"vars": {"VERIFIED": "yes"}}, "goto": "agent"}], "else": "bye"},
        "agent": {"type": "transfer", "service": "general"},
        "bye": {"type": "hangup"},
    })
    _, outcome = simulate(flows, "t", caller(), ["1234#"])
    assert outcome.kind == "transfer"
    assert outcome.variables == {"PIN": "1234", "VERIFIED": "yes"}


def test_goto_another_flow() -> None:
    flows = flow_of({"a": {"type": "goto_flow", "flow": "u"}})
    flows["u"] = Flow.model_validate({"flow": "u", "start": "x", "nodes": {"x": {"type": "hangup", "prompt": "bye"}}})
    steps, outcome = simulate(flows, "t", caller(), [])
    assert outcome.path == ("t:a", "u:x")
    assert steps == ["play bye"]


def test_graphs_name_every_node_and_edge() -> None:
    flow = SHIPPED["hotline"]
    picture = mermaid(flow)
    assert picture.startswith("flowchart TD")
    assert all(name in picture for name in flow.nodes)
    assert 'main_menu -->|"press 1"| bill_menu' in picture
    graph = dot(flow)
    assert 'main_menu -> bill_menu [label="press 1"];' in graph
    assert graph.count("->") == picture.count("-->")


def test_reload_keeps_the_running_version_when_the_new_file_is_broken(tmp_path: Path) -> None:
    flows_dir = tmp_path / "flows"
    shutil.copytree(ROOT / "ivr_flows" / "flows", flows_dir)
    registry = FlowRegistry(flows_dir)
    pinned = registry.current  # a call in progress holds this
    path = flows_dir / "hotline.yaml"
    path.write_text(path.read_text().replace('"5": complaints', '"5": nowhere'))
    assert not registry.reload()
    assert registry.current is pinned
    # Swapping two keys: still a valid graph (the validator refuses flows with unreachable nodes).
    path.write_text(path.read_text().replace('"5": nowhere', '"5": orders').replace('"4": orders', '"4": complaints'))
    assert registry.reload()
    assert registry.current.version != pinned.version
    _, old = simulate(pinned.flows, "hotline", caller(), ["5"])
    _, new = simulate(registry.current.flows, "hotline", caller(), ["5"])
    assert (old.service, new.service) == ("complaints", "orders")
