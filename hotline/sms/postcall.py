"""After the call: one SMS to callers whose tier has a template (the rural liaison's thank-you),
triggered by the AMI events of a call an agent handled.

Exactly one job per call however often the events arrive and however many bridges hear them:
the job is keyed by the call's linkedid with SET NX before it is added to the stream.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import structlog
from redis.asyncio import Redis

from agi.records import CallRecord, CallRecords
from hotline.sms.jobs import OnceQueue, SmsRequest
from hotline.sms.worker import record_sms_outcome
from hotline_core.keys import RedisKeys
from hotline_core.metrics import Metrics
from hotline_core.policy import Policy, render_template

log = structlog.get_logger("sms.postcall")

TRIGGERS = frozenset({"AgentComplete"})


def post_call_text(record: CallRecord, policy: Policy, opted_out: bool) -> str | None:
    """The SMS for a finished call, or None (pure): no template for the tier, a blacklisted
    caller, an opted-out number or no number at all means no SMS."""
    identity = record.identity
    template = policy.sms_templates.get(str(identity.get("tier", "")))
    if not template or identity.get("blacklist") or opted_out or not identity.get("number"):
        return None
    fields = {k: str(identity.get(k, "")) for k in ("name", "label", "brand_label", "level_label")}
    return render_template(template, fields)


class PostCallSms:
    def __init__(self, redis: Redis, prefix: str, policy: Policy, records: CallRecords, ttl_s: int = 7 * 86400,
                 metrics: Metrics | None = None, once: OnceQueue | None = None):
        self._redis = redis
        self._metrics = metrics or Metrics()
        self._keys = RedisKeys(prefix)
        self._policy = policy
        self._records = records
        self._once = once or OnceQueue(redis, prefix, ttl_s)

    async def on_event(self, event: Mapping[str, Any]) -> str | None:
        """Handle an AMI event; returns the new job id when one was queued."""
        if event.get("Event") not in TRIGGERS:
            return None
        return await self.call_ended(str(event.get("Uniqueid", "")))

    async def calls_ended(self, uniqueids: list[str]) -> None:
        """Calls an agent finished, as the queue_log says (a call that ended while no bridge heard
        AMI): queued once per call, whichever of the two tells first."""
        for uniqueid in uniqueids:
            await self.call_ended(uniqueid)

    async def call_ended(self, uniqueid: str) -> str | None:
        """An agent finished the call `uniqueid`: its SMS, if its tier has one; returns the new job id."""
        record = await self._records.get(uniqueid)
        if record is None:
            return None  # not a call that came through the hotline's entry
        number = str(record.identity.get("number") or "")
        opted_out = bool(number) and bool(await self._redis.sismember(self._keys.sms_optout, number))
        text = post_call_text(record, self._policy, opted_out)
        if text is None:
            return None
        job_id = await self._once.add(self._keys.sms_post_call(record.linkedid),
                                      SmsRequest("post_call", record.uniqueid, number, text))
        if not job_id:
            return None  # the same call's event again, or another bridge got there first
        self._metrics.sms.labels("queued").inc()
        await record_sms_outcome(self._redis, self._keys, record.uniqueid, str(job_id), "queued")
        log.info("post-call sms queued", job=job_id, tier=record.identity.get("tier"), uniqueid=record.uniqueid)
        return str(job_id)
