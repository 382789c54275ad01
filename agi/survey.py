"""The `survey` route: the post-call satisfaction survey, on the caller's channel after the agent
ended an answered call.

AGI(agi://host:4573/survey,${CHANNEL(linkedid)},${MEMBERNAME}): the dialplan comes here only for
a call an agent answered (app_queue's `c` option keeps the caller on the line when the agent
hangs up, and MEMBERNAME names that agent). Whether this call is offered the survey is policy
(hotline_core.survey.offered); the questions are a flow of ivr_flows/ like the others. The result
(answered with a key, no answer, an invalid key, hung up) joins the call's record and goes to
the records as a `survey` fact with the agent; a caller who hangs up at once costs a few
milliseconds and loses nothing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import structlog

from agi.ivr import FlowRegistry, drive
from agi.protocol import Environment
from agi.records import CallRecords
from agi.session import AgiSession, ChannelGone
from hotline_core.logs import bind_call_fields
from hotline_core.policy import Policy
from hotline_core.survey import offered, result
from ivr_flows.engine import Caller, run

log = structlog.get_logger("agi.survey")


@dataclass(frozen=True, slots=True)
class SurveyRoute:
    registry: FlowRegistry
    records: CallRecords
    policy: Policy
    now: Callable[[], datetime]

    async def __call__(self, session: AgiSession, env: Environment) -> None:
        started = time.perf_counter()
        survey = self.policy.survey
        uniqueid = env.get("agi_uniqueid")
        args = env.arguments
        agent = args[1].strip() if len(args) > 1 else ""
        bind_call_fields(uniqueid=uniqueid, caller=env.get("agi_callerid"))
        record = None
        try:
            async with asyncio.timeout(1.0):
                record = await self.records.get(uniqueid)
        except (TimeoutError, OSError) as exc:
            # Without the record the level is unknown: the policy's sample still decides.
            log.warning("call record not read for the survey", error=f"{type(exc).__name__}: {exc}")
        identity = record.identity if record is not None else {}
        if survey is None or not agent or not offered(survey, str(identity.get("level", "")), uniqueid):
            log.info("survey not offered", agent=agent, level=identity.get("level"))
            return
        flows = self.registry.current
        if survey.flow not in flows.flows:
            log.error("survey flow missing; no survey offered", flow=survey.flow, flows=sorted(flows.flows))
            return
        caller = Caller(identity, self.now().astimezone(self.policy.zone))
        digits: list[str] = []
        hung_up = False
        pressed = ""
        try:
            outcome = await drive(session, run(flows.flows, survey.flow, caller), caller, uniqueid, digits)
            pressed = outcome.variables.get(survey.variable, "")
        except ChannelGone:
            hung_up = True
            pressed = digits[-1] if digits else ""
        answer = result(survey, pressed, hung_up)
        fields = {**answer.fields(), "agent": agent, "at": f"{time.time():.3f}"}
        try:
            async with asyncio.timeout(1.0):
                await self.records.annotate(uniqueid, fields, kind="survey")
        except (TimeoutError, OSError) as exc:
            log.warning("survey answer not recorded", error=f"{type(exc).__name__}: {exc}", result=answer.result)
            return
        log.info("survey finished", agent=agent, result=answer.result, key=answer.key,
                 ms=round((time.perf_counter() - started) * 1000))
