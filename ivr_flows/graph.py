"""Flows as pictures: Mermaid (renders in Markdown viewers) and Graphviz dot (pure text)."""

from __future__ import annotations

from ivr_flows.model import Branch, Flow, GotoFlow, Hangup, Menu, Play, SetVar, Sms, Transfer, targets


def _label(name: str, node: object) -> str:
    if isinstance(node, Play):
        return f"{name}\\nplay {node.prompt.default}"
    if isinstance(node, Menu):
        return f"{name}\\nmenu {node.prompt.default}"
    if isinstance(node, Branch):
        return f"{name}\\nbranch"
    if isinstance(node, SetVar):
        return f"{name}\\nset {node.var}"
    if isinstance(node, Sms):
        return f"{name}\\nSMS"
    if isinstance(node, Transfer):
        return f"{name}\\nagents: {node.service}"
    if isinstance(node, GotoFlow):
        return f"{name}\\nflow {node.flow}"
    if isinstance(node, Hangup):
        return f"{name}\\nhang up"
    return name


def _edge_label(key: str, flow: Flow, name: str) -> str:
    node = flow.nodes[name]
    if key.startswith("options."):
        return f"press {key.split('.', 1)[1]}"
    if key.startswith("rules[") and isinstance(node, Branch):
        index = int(key[6:].split("]")[0])
        when = node.rules[index].when.model_dump(exclude_defaults=True)
        return ", ".join(f"{k}={v}" for k, v in when.items())
    return {"next": "", "else": "else", "on_failure": "no valid input"}.get(key, key)


def mermaid(flow: Flow) -> str:
    lines = ["flowchart TD", f"    start((start)) --> {flow.start}"]
    for name, node in flow.nodes.items():
        shape = ("{{", "}}") if isinstance(node, Branch | Menu) else ("([", "])") if isinstance(
            node, Transfer | Hangup | GotoFlow) else ("[", "]")
        text = _label(name, node).replace("\\n", "<br/>").replace('"', "'")
        lines.append(f'    {name}{shape[0]}"{text}"{shape[1]}')
    for name, node in flow.nodes.items():
        for key, target in targets(node):
            label = _edge_label(key, flow, name).replace('"', "'")
            lines.append(f'    {name} -->|"{label}"| {target}' if label else f"    {name} --> {target}")
    return "\n".join(lines) + "\n"


def dot(flow: Flow) -> str:
    lines = [f'digraph "{flow.flow}" {{', "  rankdir=TB;", '  node [fontname="sans-serif"];',
             '  start [shape=circle, label="start"];', f"  start -> {flow.start};"]
    for name, node in flow.nodes.items():
        shape = "diamond" if isinstance(node, Branch) else "box3d" if isinstance(node, Menu) else (
            "doubleoctagon" if isinstance(node, Transfer | Hangup | GotoFlow) else "box")
        lines.append(f'  {name} [shape={shape}, label="{_label(name, node)}"];')
    for name, node in flow.nodes.items():
        for key, target in targets(node):
            label = _edge_label(key, flow, name).replace('"', "'")
            lines.append(f'  {name} -> {target} [label="{label}"];')
    lines.append("}")
    return "\n".join(lines) + "\n"
