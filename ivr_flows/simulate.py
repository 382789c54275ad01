"""Walk a flow as a caller would, without Asterisk: each step as a line of text."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ivr_flows.engine import Ask, Caller, Note, Outcome, PlayPrompt, SendSms, run
from ivr_flows.model import Flow


def simulate(flows: Mapping[str, Flow], flow: str, caller: Caller, inputs: Sequence[str]) -> tuple[list[str], Outcome]:
    """`inputs` answer the menus in order ('' is silence until the timeout); once they run out
    the caller stays silent."""
    steps: list[str] = []
    pending = list(inputs)
    walk = run(flows, flow, caller)
    reply: str | None = None
    try:
        while True:
            action = walk.send(reply)
            reply = None
            if isinstance(action, PlayPrompt):
                steps.append(f"play {action.prompt}")
            elif isinstance(action, Ask):
                reply = pending.pop(0) if pending else ""
                heard = f"presses {reply}" if reply else f"stays silent ({action.timeout_s:g} s)"
                steps.append(f"menu {action.prompt} (up to {action.max_digits} digit(s)): caller {heard}")
            elif isinstance(action, SendSms):
                steps.append(f"SMS to the caller: {action.text}")
            elif isinstance(action, Note):
                steps.append(f"  {action.flow}:{action.node}: {action.text}")
    except StopIteration as stop:
        outcome: Outcome = stop.value
    return steps, outcome
