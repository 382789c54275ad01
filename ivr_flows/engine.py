"""The flow interpreter: a generator that yields what to do on the call and receives the caller's
input. The FastAGI runtime turns the actions into AGI commands; the simulator prints them.
Decisions (conditions, menu handling) are pure functions, tested by value."""

from __future__ import annotations

import string
from collections.abc import Generator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, time
from typing import Any

from ivr_flows.model import Branch, Condition, Flow, GotoFlow, Hangup, Menu, Play, Prompt, SetVar, Sms, Transfer

MAX_STEPS = 500  # a flow that never asks for input and never ends is a bug the validator missed


@dataclass(frozen=True, slots=True)
class PlayPrompt:
    """Play `prompt`; a digit pressed during it is answered back and becomes the next menu's
    input (callers who know the menu need not wait for it)."""

    prompt: str


@dataclass(frozen=True, slots=True)
class Ask:
    """Play `prompt` and collect up to `max_digits` digits (ended by # when more than one)."""

    prompt: str
    timeout_s: float
    max_digits: int


@dataclass(frozen=True, slots=True)
class SendSms:
    text: str


@dataclass(frozen=True, slots=True)
class Note:
    """A decision worth showing (simulator) or logging (runtime); needs no answer."""

    flow: str
    node: str
    text: str


Action = PlayPrompt | Ask | SendSms | Note


@dataclass(frozen=True, slots=True)
class Outcome:
    kind: str  # "transfer" or "hangup"
    service: str = ""
    queue: str = ""
    path: tuple[str, ...] = ()  # flow:node visited, in order
    variables: Mapping[str, str] = field(default_factory=dict)
    reason: str = ""  # why the walk ended other than by the flow's own design


@dataclass(frozen=True, slots=True)
class Caller:
    identity: Mapping[str, Any]  # Identity.to_json()
    at: datetime  # call time in the operator's time zone


def choose_prompt(prompt: Prompt, identity: Mapping[str, Any]) -> str:
    by_tier = prompt.tiers.get(str(identity.get("tier", "")), prompt.default)
    return prompt.levels.get(str(identity.get("level", "")), by_tier)


def _any_of(wanted: tuple[Any, ...], value: Any) -> bool:
    return not wanted or value in wanted


def matches(condition: Condition, caller: Caller, variables: Mapping[str, str]) -> bool:
    ident = caller.identity
    flags = {f for f in ("redlist", "blacklist", "degraded") if ident.get(f)}
    if not (_any_of(condition.tiers, ident.get("tier")) and _any_of(condition.brands, ident.get("brand"))
            and _any_of(condition.levels, ident.get("level"))):
        return False
    if condition.flags and not set(condition.flags) <= flags:
        return False
    at = caller.at
    if not (_any_of(condition.months, at.month) and _any_of(condition.weekdays, at.isoweekday())):
        return False
    if condition.dates and at.strftime("%Y-%m-%d") not in condition.dates:
        return False
    if condition.hours is not None:
        start, end = condition.hours.split("-")
        now = at.time()
        if not _parse_hm(start) <= now < _parse_hm(end):
            return False
    return all(variables.get(k) == v for k, v in condition.vars.items())


def _parse_hm(text: str) -> time:
    hours, minutes = (int(p) for p in text.split(":"))
    return time.max if hours == 24 else time(hours, minutes)


class _Fields(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return ""


def render_sms(template: str, caller: Caller, variables: Mapping[str, str]) -> str:
    ident = caller.identity
    fields = _Fields({key: str(ident.get(key, "")) for key in ("name", "label", "brand_label", "level_label")})
    fields.update(variables)
    return string.Formatter().vformat(template, (), fields)


@dataclass(slots=True)
class _Walk:
    variables: dict[str, str] = field(default_factory=dict)
    path: list[str] = field(default_factory=list)
    typed_ahead: str = ""  # digits pressed during a prompt, for the next menu

    def play(self, prompt: Prompt, caller: Caller) -> Generator[Action, str | None, None]:
        pressed = yield PlayPrompt(choose_prompt(prompt, caller.identity))
        if pressed:
            self.typed_ahead += pressed


Walk = Generator[Action, str | None, Outcome]


def run(flows: Mapping[str, Flow], flow_name: str, caller: Caller, path: list[str] | None = None) -> Walk:
    """Walk the flows from `flow_name`. Answer each Ask with the digits collected ('' when none)
    and each PlayPrompt with a digit pressed during it (or None). `path`, if given, receives
    each node entered as it happens (the driver keeps it if the caller leaves half-way)."""
    walk = _Walk(path=path if path is not None else [])
    variables, path = walk.variables, walk.path
    flow = flows[flow_name]
    node_id = flow.start
    for _ in range(MAX_STEPS):
        node = flow.nodes[node_id]
        path.append(f"{flow.flow}:{node_id}")
        if isinstance(node, Play):
            yield from walk.play(node.prompt, caller)
            node_id = node.next
        elif isinstance(node, SetVar):
            variables[node.var] = node.value
            node_id = node.next
        elif isinstance(node, Sms):
            yield SendSms(render_sms(node.template, caller, variables))
            if node.prompt is not None:
                yield from walk.play(node.prompt, caller)
            node_id = node.next
        elif isinstance(node, Branch):
            node_id = node.else_
            for i, rule in enumerate(node.rules):
                if matches(rule.when, caller, variables):
                    node_id = rule.goto
                    yield Note(flow.flow, path[-1].split(":")[1], f"rule {i + 1} matched -> {rule.goto}")
                    break
            else:
                yield Note(flow.flow, path[-1].split(":")[1], f"no rule matched -> {node.else_}")
        elif isinstance(node, Menu):
            node_id = yield from _menu(flow, node_id, node, caller, walk)
        elif isinstance(node, GotoFlow):
            flow = flows[node.flow]
            node_id = flow.start
        elif isinstance(node, Transfer):
            if node.prompt is not None:
                yield PlayPrompt(choose_prompt(node.prompt, caller.identity))
            queue = node.queue or str(caller.identity.get("queue", ""))
            return Outcome("transfer", node.service, queue, tuple(path), dict(variables))
        elif isinstance(node, Hangup):
            if node.prompt is not None:
                yield PlayPrompt(choose_prompt(node.prompt, caller.identity))
            return Outcome("hangup", path=tuple(path), variables=dict(variables))
        else:  # pragma: no cover - the model admits no other node kind
            raise TypeError(f"unknown node kind {node!r}")
    # A loop the validator missed (it refuses the ones it can see): end the call politely, say why.
    reason = f"flow {flow_name} ran {MAX_STEPS} steps without asking or ending (a loop)"
    yield Note(flow.flow, node_id, reason)
    yield PlayPrompt("vm-goodbye")
    return Outcome("hangup", path=tuple(path), variables=dict(variables), reason=reason)


def _menu(flow: Flow, name: str, node: Menu, caller: Caller, walk: _Walk) -> Generator[Action, str | None, str]:
    for attempt in range(node.retries + 1):
        if walk.typed_ahead and (node.digits == 1 or walk.typed_ahead.endswith("#")):
            digits, walk.typed_ahead = walk.typed_ahead[: node.digits], ""
        else:
            asked = yield Ask(choose_prompt(node.prompt, caller.identity), node.timeout, node.digits)
            digits, walk.typed_ahead = walk.typed_ahead + (asked or ""), ""
        digits = digits.rstrip("#")
        if node.store:
            walk.variables[node.store] = digits
        if digits in node.options:
            yield Note(flow.flow, name, f"pressed {digits} -> {node.options[digits]}")
            return node.options[digits]
        retry = attempt < node.retries
        if not digits:
            yield Note(flow.flow, name, "no input" + (", asking again" if retry else ""))
            extra = node.timeout_prompt
        else:
            yield Note(flow.flow, name, f"invalid input {digits}" + (", asking again" if retry else ""))
            extra = node.invalid_prompt
        if extra is not None and retry:
            yield from walk.play(extra, caller)
    yield Note(flow.flow, name, f"retries used up -> {node.on_failure}")
    return node.on_failure
