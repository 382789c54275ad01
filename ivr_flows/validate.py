"""Loading and checking flow files: schema errors and graph errors, each as file:line:column.

Graph checks: a target that does not exist, a node no path reaches, a node from which no path
reaches a transfer or a hang-up (a dead end, or a menu loop with no exit), a prompt missing from
the sound directories, a transfer to a queue that asterisk_conf/ does not define.
"""

from __future__ import annotations

import hashlib
import re
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from hotline_core.yamlpos import ConfigFileError, LoadedYaml, Problem, load_yaml, schema_message
from ivr_flows.model import TERMINAL, Flow, GotoFlow, Menu, Transfer, prompts, targets

# Bounds on what one reload may ask of the service (a flow is a menu tree, not a data set).
MAX_FLOW_BYTES = 1024 * 1024
MAX_NODES = 2000


def shipped_flows() -> Path:
    """The flows that ship with the package (package data: valid in a checkout and when installed)."""
    return Path(str(resources.files("ivr_flows").joinpath("flows")))


SOUND_EXTENSIONS = (".gsm", ".wav", ".ulaw", ".alaw", ".sln", ".sln16", ".g722", ".g729")


@dataclass(frozen=True, slots=True)
class FlowSet:
    """Flows loaded together; immutable, so a call keeps the version it started on."""

    flows: dict[str, Flow]
    version: str
    files: dict[str, str]  # flow name -> file


def sound_names(directories: Iterable[tuple[str, Path]]) -> set[str]:
    """Every prompt name Asterisk could play, from (name prefix, directory of sound files) pairs."""
    names: set[str] = set()
    for prefix, directory in directories:
        if directory.is_dir():
            for path in directory.rglob("*"):
                if path.suffix in SOUND_EXTENSIONS:
                    names.add(prefix + str(path.relative_to(directory).with_suffix("")))
    return names


def queue_names(queues_conf: Path) -> set[str]:
    sections = re.findall(r"^\[([^\]]+)\](\(.*\))?", queues_conf.read_text(encoding="utf-8"), re.MULTILINE)
    return {name for name, options in sections if name != "general" and "!" not in options}


def flow_files(path: Path) -> list[Path]:
    return sorted(path.glob("*.yaml")) if path.is_dir() else [path]


def load_flows(path: Path, sounds: set[str] | None = None, queues: set[str] | None = None) -> FlowSet:
    """Every flow under `path` (a directory or one file), checked; ConfigFileError lists all problems."""
    problems: list[Problem] = []
    loaded: dict[str, tuple[Flow, LoadedYaml]] = {}
    digest = hashlib.sha256()
    files = flow_files(path)
    if not files:
        raise ConfigFileError([Problem(str(path), "", "no flow files (*.yaml)")])
    for file in files:
        size = file.stat().st_size
        if size > MAX_FLOW_BYTES:
            problems.append(Problem(str(file), "", f"{size} bytes: a flow file is at most {MAX_FLOW_BYTES}"))
            continue
        digest.update(file.name.encode() + b"\0" + file.read_bytes())
        try:
            source = load_yaml(file)
        except ConfigFileError as exc:
            problems.extend(exc.problems)
            continue
        try:
            flow = Flow.model_validate(source.data)
        except ValidationError as exc:
            problems.extend(source.problem(_loc(err["loc"]), _message(err)) for err in exc.errors())
            continue
        if len(flow.nodes) > MAX_NODES:
            problems.append(source.problem(("nodes",), f"{len(flow.nodes)} nodes: a flow has at most {MAX_NODES}"))
            continue
        if flow.flow in loaded:
            problems.append(source.problem(("flow",), f"flow {flow.flow!r} is also defined in "
                                                       f"{loaded[flow.flow][1].path}"))
            continue
        loaded[flow.flow] = (flow, source)
    for flow, source in loaded.values():
        problems.extend(_graph_problems(flow, source, loaded, sounds, queues))
    if problems:
        raise ConfigFileError(problems)
    return FlowSet({n: f for n, (f, _) in loaded.items()}, digest.hexdigest()[:12],
                   {n: s.path for n, (_, s) in loaded.items()})


def _loc(loc: tuple[int | str, ...]) -> tuple[int | str, ...]:
    # Pydantic names the union member in the path ("nodes.x.menu.options"); the file has no such key.
    kinds = {"play", "menu", "branch", "set", "sms", "transfer", "goto_flow", "hangup"}
    cleaned = [p for i, p in enumerate(loc) if not (i >= 2 and loc[0] == "nodes" and p in kinds and i == 2)]
    return tuple("else" if p == "else_" else p for p in cleaned)


def _message(err: Any) -> str:
    # A node's unknown `type` is the one error the flow schema words itself; the rest are shared.
    if err.get("type") == "union_tag_invalid":
        return "type must be one of play, menu, branch, set, sms, transfer, goto_flow, hangup"
    return schema_message(err)


def _graph_problems(
    flow: Flow,
    source: LoadedYaml,
    flows: dict[str, tuple[Flow, LoadedYaml]],
    sounds: set[str] | None,
    queues: set[str] | None,
) -> list[Problem]:
    problems: list[Problem] = []
    if flow.start not in flow.nodes:
        problems.append(source.problem(("start",), f"start node {flow.start!r} is not defined"))
    for name, node in flow.nodes.items():
        for key, target in targets(node):
            if target not in flow.nodes:
                where = ("nodes", name, *_split(key))
                problems.append(source.problem(where, f"goes to {target!r}, which is not defined"))
        if isinstance(node, GotoFlow) and node.flow not in flows:
            problems.append(source.problem(("nodes", name, "flow"), f"flow {node.flow!r} is not defined"))
        if queues is not None and isinstance(node, Transfer) and node.queue and node.queue not in queues:
            known = ", ".join(sorted(queues))
            problems.append(source.problem(("nodes", name, "queue"),
                                           f"queue {node.queue!r} is not in asterisk_conf/queues.conf ({known})"))
        if sounds is not None:
            for key, prompt in prompts(node):
                for sound in prompt.names():
                    if sound not in sounds:
                        problems.append(source.problem(("nodes", name, key), f"prompt {sound!r} is not in the sound "
                                                                             "directories"))
    if problems:
        return problems  # reachability needs every target to exist
    reachable = _reachable(flow)
    for name in flow.nodes:
        if name not in reachable:
            problems.append(source.problem(("nodes", name), f"node {name!r} is unreachable from start {flow.start!r}"))
    for cycle in _silent_cycles(flow):
        shown = " > ".join([*cycle, cycle[0]])
        problems.append(source.problem(("nodes", cycle[0]), f"nodes {shown} can loop without the caller pressing "
                                                          "anything; put a menu in the loop or end it"))
    escaping = _can_finish(flow)
    for name, node in flow.nodes.items():
        if name in reachable and name not in escaping:
            what = "a menu loop with no exit" if isinstance(node, Menu) or _loop_has_menu(flow, name) else "a dead end"
            problems.append(source.problem(("nodes", name), f"node {name!r} is {what}: no path from it reaches a "
                                                            "transfer, a hang-up or another flow"))
    return problems


def _split(key: str) -> tuple[str | int, ...]:
    parts: list[str | int] = []
    for piece in key.split("."):
        match = re.fullmatch(r"(\w+)\[(\d+)\]", piece)
        parts.extend([match.group(1), int(match.group(2))] if match else [piece])
    return tuple(parts)


def _reachable(flow: Flow) -> set[str]:
    seen = {flow.start}
    queue = deque([flow.start])
    while queue:
        for _, target in targets(flow.nodes[queue.popleft()]):
            if target not in seen:
                seen.add(target)
                queue.append(target)
    return seen


def _can_finish(flow: Flow) -> set[str]:
    """Nodes from which some path reaches a terminal node (reverse search from the terminals)."""
    incoming: dict[str, list[str]] = {name: [] for name in flow.nodes}
    for name, node in flow.nodes.items():
        for _, target in targets(node):
            incoming[target].append(name)
    done = {name for name, node in flow.nodes.items() if isinstance(node, TERMINAL)}
    queue = deque(done)
    while queue:
        for source in incoming[queue.popleft()]:
            if source not in done:
                done.add(source)
                queue.append(source)
    return done


def _silent_cycles(flow: Flow) -> list[list[str]]:
    """Loops of nodes none of which waits for the caller (no menu): the walk would go round them
    for ever. Found as the strongly connected parts of the flow's graph (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(name: str) -> None:
        index[name] = low[name] = len(index)
        stack.append(name)
        on_stack.add(name)
        for _, target in targets(flow.nodes[name]):
            if target not in index:
                visit(target)
                low[name] = min(low[name], low[target])
            elif target in on_stack:
                low[name] = min(low[name], index[target])
        if low[name] == index[name]:
            part = []
            while True:
                node = stack.pop()
                on_stack.discard(node)
                part.append(node)
                if node == name:
                    break
            looped = len(part) > 1 or any(t == name for _, t in targets(flow.nodes[name]))
            if looped and not any(isinstance(flow.nodes[n], Menu) for n in part):
                found.append(sorted(part))

    for name in flow.nodes:
        if name not in index:
            visit(name)
    return found


def _loop_has_menu(flow: Flow, start: str) -> bool:
    seen = {start}
    queue = deque([start])
    while queue:
        node = flow.nodes[queue.popleft()]
        if isinstance(node, Menu):
            return True
        for _, target in targets(node):
            if target not in seen:
                seen.add(target)
                queue.append(target)
    return False
