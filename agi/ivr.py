"""The `ivr` route: call entry, then the IVR flow, then back to the dialplan for the queue.

AGI(agi://host:4573/ivr,${CHANNEL(linkedid)}). The call runs on the flow version that was
current when it arrived, even if the flows are reloaded meanwhile; a caller who hangs up in the
IVR ends the walk quietly and the call record says where.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import structlog

from agi.entry import CallEntry, enter_channel, set_variables
from agi.protocol import CommandFailed, Environment, Response
from agi.records import CallRecords
from agi.session import AgiSession, ChannelGone
from hotline_core.logs import bind_call_fields
from hotline_core.yamlpos import ConfigFileError
from ivr_flows.engine import Ask, Caller, Note, Outcome, PlayPrompt, SendSms, Walk, run
from ivr_flows.validate import FlowSet, load_flows

log = structlog.get_logger("agi.ivr")

ESCAPE_DIGITS = "0123456789*#"

# Where a flow's self-service SMS goes: (uniqueid, number, text). The SMS feature's job stream in
# `hotline serve`; the route only needs to know the request was accepted.
SmsOutbox = Callable[[str, str, str], Awaitable[object]]


class FlowRegistry:
    """The current flow version; a reload that fails validation keeps the running one."""

    def __init__(self, path: Path, queues: set[str] | None = None, sounds: set[str] | None = None):
        self._path = path
        self._queues = queues
        self._sounds = sounds
        self.current: FlowSet = load_flows(path, sounds, queues)

    async def reload_async(self) -> bool:
        """Load and check off the event loop (a big or broken file must not stall the calls),
        then swap in only a version that passed."""
        return await asyncio.to_thread(self.reload)

    def reload(self) -> bool:
        try:
            loaded = load_flows(self._path, self._sounds, self._queues)
        except ConfigFileError as exc:
            log.error("flow reload refused; the running version keeps serving", version=self.current.version,
                      problems=[str(p) for p in exc.problems][:20])
            return False
        previous, self.current = self.current, loaded
        log.info("flows reloaded", version=loaded.version, previous=previous.version, flows=sorted(loaded.flows))
        return True


@dataclass(frozen=True, slots=True)
class IvrRoute:
    entry: CallEntry
    registry: FlowRegistry
    records: CallRecords
    sms: SmsOutbox
    flow: str = "hotline"

    async def __call__(self, session: AgiSession, env: Environment) -> None:
        started = time.perf_counter()
        flows = self.registry.current  # pinned: a reload during the call does not change it
        uniqueid = env.get("agi_uniqueid")
        bind_call_fields(uniqueid=uniqueid, caller=env.get("agi_callerid"), flow_version=flows.version)
        entered = await enter_channel(self.entry, session, env, started, route="ivr")
        lookup = self.entry.lookup
        caller = Caller(entered.identity.to_json(), lookup.now().astimezone(lookup.policy.zone))
        path: list[str] = []
        digits: list[str] = []  # what the caller pressed, one item per prompt or menu answered
        walk = run(flows.flows, self.flow, caller, path)
        try:
            outcome = await drive(session, walk, caller, uniqueid, digits, self.sms)
        except ChannelGone as exc:
            log.info("caller left in the IVR", reason=exc.reason, at_step=len(path))
            await self._close_record(uniqueid, flows.version, Outcome("hung up in IVR", path=tuple(path)), digits)
            return
        variables = [
            ("HOTLINE_IVR_RESULT", outcome.kind),
            ("HOTLINE_SERVICE", outcome.service),
            ("HOTLINE_QUEUE", outcome.queue),
            ("HOTLINE_IVR_PATH", ">".join(p.split(":", 1)[1] for p in outcome.path)[-400:]),
            ("HOTLINE_FLOW_VERSION", flows.version),
        ]
        try:
            await set_variables(session, variables)
        except ChannelGone:
            outcome = Outcome("hung up in IVR", path=outcome.path)
        await self._close_record(uniqueid, flows.version, outcome, digits)
        if outcome.reason:
            log.warning("ivr ended the call", reason=outcome.reason, path=list(outcome.path)[-10:])
        log.info("ivr finished", outcome=outcome.kind, service=outcome.service, queue=outcome.queue,
                 path=list(outcome.path), ms=round((time.perf_counter() - started) * 1000))

    async def _close_record(self, uniqueid: str, version: str, outcome: Outcome, digits: list[str]) -> None:
        try:
            async with asyncio.timeout(1.0):
                await self.records.annotate(uniqueid, {"flow_version": version, "ivr_outcome": outcome.kind,
                                                       "service": outcome.service, "ivr_path": ">".join(outcome.path),
                                                       "digits": ",".join(digits)})
        except (TimeoutError, OSError) as exc:
            log.warning("call record not updated", error=f"{type(exc).__name__}: {exc}")


async def drive(session: AgiSession, walk: Walk, caller: Caller, uniqueid: str, digits: list[str],
                sms: SmsOutbox | None = None) -> Outcome:
    """Carry out a flow walk's actions over AGI until it ends; `digits` receives each input
    the caller gives as it happens (kept if the caller leaves half-way: ChannelGone)."""
    reply: str | None = None
    while True:
        try:
            action = walk.send(reply)
        except StopIteration as stop:
            result: Outcome = stop.value
            return result
        reply = None
        if isinstance(action, PlayPrompt):
            answer = await _one(session, ("STREAM FILE", action.prompt, ESCAPE_DIGITS))
            code = int(answer.result) if answer.result.lstrip("-").isdigit() else 0
            if code < 0:
                raise ChannelGone(f"playing {action.prompt} failed (result {code})")
            reply = chr(code) if code > 0 else None
            if reply:
                digits.append(reply)
        elif isinstance(action, Ask):
            answer = await _one(session, ("GET DATA", action.prompt, str(int(action.timeout_s * 1000)),
                                          str(action.max_digits)))
            if answer.result == "-1":
                raise ChannelGone("collecting digits failed (caller hung up)")
            reply = answer.result
            if reply and reply != "timeout":
                digits.append(reply)
        elif isinstance(action, SendSms):
            number = str(caller.identity.get("number") or "")
            if number and sms is not None:
                await sms(uniqueid, number, action.text)
        elif isinstance(action, Note):
            log.debug("ivr step", node=action.node, decision=action.text)


async def _one(session: AgiSession, command: tuple[str, ...]) -> Response:
    [reply] = await session.run([command])
    if isinstance(reply, CommandFailed):
        raise ChannelGone(f"asterisk refused {command[0]} ({reply.code} {reply.message})")
    return reply
