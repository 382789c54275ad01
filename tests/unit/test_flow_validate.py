"""The flow validator on a corpus of broken flows: each error kind, located file:line:column."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import yaml

from hotline_core.yamlpos import ConfigFileError
from ivr_flows.model import Flow
from ivr_flows.validate import load_flows, queue_names

ROOT = Path(__file__).resolve().parents[2]
GOOD = """\
flow: main
start: menu
nodes:
  menu:
    type: menu
    prompt: beep
    options: {"1": agent, "2": bye}
    on_failure: agent
  agent:
    type: transfer
    service: general
  bye:
    type: hangup
    prompt: vm-goodbye
"""


def problems(tmp_path: Path, text: str, sounds: set[str] | None = None, queues: set[str] | None = None,
             name: str = "main.yaml") -> list[str]:
    (tmp_path / name).write_text(textwrap.dedent(text))
    with pytest.raises(ConfigFileError) as info:
        load_flows(tmp_path, sounds, queues)
    return [str(p) for p in info.value.problems]


def line_of(tmp_path: Path, needle: str, name: str = "main.yaml") -> int:
    return next(i for i, line in enumerate((tmp_path / name).read_text().splitlines(), 1) if needle in line)


def test_the_good_flow_loads(tmp_path: Path) -> None:
    (tmp_path / "main.yaml").write_text(GOOD)
    flows = load_flows(tmp_path, {"beep", "vm-goodbye"}, {"hotline"})
    assert list(flows.flows) == ["main"]
    assert len(flows.version) == 12


def test_unknown_key_and_missing_key(tmp_path: Path) -> None:
    found = problems(tmp_path, GOOD.replace("    on_failure: agent\n", "    on_falure: agent\n"))
    line = line_of(tmp_path, "on_falure")
    assert f"{tmp_path / 'main.yaml'}:{line}:5: nodes.menu.on_falure: unknown key (a typo?)" in found
    assert any("nodes.menu.on_failure: required key is missing" in p for p in found)


def test_bad_node_type_and_bad_value(tmp_path: Path) -> None:
    found = problems(tmp_path, GOOD.replace("type: hangup", "type: hang_up"))
    assert any("nodes.bye.type" in p or "nodes.bye" in p for p in found), found
    assert any("type must be one of" in p for p in found), found
    found = problems(tmp_path, GOOD.replace("options: {", "timeout: -3\n    options: {"))
    assert any("nodes.menu.timeout" in p and "greater than 0" in p for p in found), found


def test_undefined_target(tmp_path: Path) -> None:
    found = problems(tmp_path, GOOD.replace('"2": bye', '"2": byebye'))
    line = line_of(tmp_path, "byebye")
    assert any(f"main.yaml:{line}:" in p and "options.2" in p and "goes to 'byebye', which is not defined" in p
               for p in found), found


def test_unreachable_node(tmp_path: Path) -> None:
    found = problems(tmp_path, GOOD + "  orphan:\n    type: hangup\n")
    line = line_of(tmp_path, "orphan:")
    assert any(f"main.yaml:{line}:" in p and "node 'orphan' is unreachable" in p for p in found), found


def test_dead_end(tmp_path: Path) -> None:
    text = GOOD.replace('"2": bye', '"2": ping') + (
        "  ping:\n    type: play\n    prompt: beep\n    next: pong\n"
        "  pong:\n    type: set\n    var: X\n    value: y\n    next: ping\n"
    )
    found = problems(tmp_path, text)
    assert any("node 'ping' is a dead end" in p for p in found), found
    assert any("node 'pong' is a dead end" in p for p in found), found


def test_menu_loop_with_no_exit(tmp_path: Path) -> None:
    text = GOOD.replace('"2": bye', '"2": loop') + (
        "  loop:\n    type: menu\n    prompt: beep\n    options: {\"1\": loop}\n    on_failure: loop\n"
    )
    found = problems(tmp_path, text)
    assert any("node 'loop' is a menu loop with no exit" in p for p in found), found


def test_prompt_not_in_the_sound_directories(tmp_path: Path) -> None:
    found = problems(tmp_path, GOOD, sounds={"beep"})
    line = line_of(tmp_path, "prompt: vm-goodbye")
    assert any(f"main.yaml:{line}:" in p and "prompt 'vm-goodbye' is not in the sound directories" in p
               for p in found), found


def test_transfer_to_a_queue_asterisk_does_not_have(tmp_path: Path) -> None:
    found = problems(tmp_path, GOOD.replace("service: general", "service: general\n    queue: vip"), queues={"hotline"})
    assert any("queue 'vip' is not in asterisk_conf/queues.conf (hotline)" in p for p in found), found


def test_goto_an_undefined_flow_and_duplicate_flows(tmp_path: Path) -> None:
    found = problems(tmp_path, GOOD.replace("type: hangup\n    prompt: vm-goodbye", "type: goto_flow\n    flow: nowhere"))
    assert any("flow 'nowhere' is not defined" in p for p in found), found
    (tmp_path / "main.yaml").write_text(GOOD)
    found = problems(tmp_path, GOOD, name="copy.yaml")
    assert any("flow 'main' is also defined in" in p for p in found), found


def test_yaml_syntax_error_is_located(tmp_path: Path) -> None:
    found = problems(tmp_path, GOOD.replace("options: {", "options: {{"))
    assert any("YAML syntax" in p and "main.yaml:" in p for p in found), found


def test_shipped_flows_are_valid_and_use_real_queues() -> None:
    flows = load_flows(ROOT / "ivr_flows" / "flows", None, queue_names(ROOT / "asterisk_conf" / "queues.conf"))
    assert "hotline" in flows.flows


def test_published_schema_matches_the_model() -> None:
    published = json.loads((ROOT / "ivr_flows" / "flow.schema.json").read_text())
    assert published == Flow.model_json_schema(), "regenerate: hotline flows schema > ivr_flows/flow.schema.json"


SILENT_LOOP = """\
flow: main
start: hello
nodes:
  hello:
    type: play
    prompt: beep
    next: check
  check:
    type: branch
    rules:
      - when: {tiers: [highend]}
        goto: agent
    else: hello
  agent:
    type: transfer
    service: general
"""


def test_a_loop_that_never_asks_the_caller_is_refused(tmp_path: Path) -> None:
    found = problems(tmp_path, SILENT_LOOP)
    assert any("nodes check > hello > check can loop without the caller pressing anything" in p for p in found), found


def test_a_flow_too_big_to_be_a_menu_is_refused_before_it_is_parsed(tmp_path: Path) -> None:
    (tmp_path / "main.yaml").write_text("flow: main\n" + "# padding\n" * 120_000)
    with pytest.raises(ConfigFileError) as info:
        load_flows(tmp_path)
    assert "a flow file is at most 1048576" in str(info.value)


def test_the_engine_ends_a_loop_the_validator_could_not_see_with_a_goodbye() -> None:
    from datetime import UTC, datetime

    from ivr_flows.engine import Caller, PlayPrompt, run

    flow = Flow.model_validate(yaml.safe_load(SILENT_LOOP))
    walk = run({"main": flow}, "main", Caller({"tier": "normal"}, datetime(2026, 11, 30, tzinfo=UTC)))
    played = []
    try:
        action = next(walk)
        while True:
            if isinstance(action, PlayPrompt):
                played.append(action.prompt)
            action = walk.send(None)
    except StopIteration as stop:
        outcome = stop.value
    assert outcome.kind == "hangup"
    assert "without asking or ending" in outcome.reason
    assert played[-1] == "vm-goodbye"


@pytest.mark.parametrize("text", ["a: " + "[" * 5000 + "]" * 5000 + "\n",
                                  "a: " + "{b: " * 3000 + "1" + "}" * 3000 + "\n",
                                  "".join(" " * i + f"k{i}:\n" for i in range(100)) + " " * 100 + "v: 1\n"])
def test_a_file_nested_too_deeply_is_refused_before_it_is_parsed(tmp_path: Path, text: str) -> None:
    path = tmp_path / "deep.yaml"
    path.write_text(text)
    with pytest.raises(ConfigFileError, match=r"deep.yaml: nested \d+ levels deep; at most 64"):
        load_flows(path)
