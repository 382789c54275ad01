"""The post-call trigger: one SMS per call however often the AMI events arrive."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from agi.records import CallRecord, CallRecords
from hotline.sms.postcall import PostCallSms, post_call_text
from hotline_core.keys import RedisKeys
from hotline_core.policy import Policy
from hotline_core.redispipe import RedisPipe

KEYS = RedisKeys("pc")
RURAL = {"number": "8613800000004", "tier": "rural", "name": "王", "label": "农村", "blacklist": False}


def record(identity: dict[str, object], uniqueid: str = "1.1", linkedid: str = "1.1") -> CallRecord:
    return CallRecord(uniqueid, linkedid, "PJSIP/caller-1", dict(identity), 1.0, "ivr")


def test_the_text_is_rendered_for_tiers_with_a_template(policy: Policy) -> None:
    text = post_call_text(record(RURAL), policy, opted_out=False)
    assert text == "尊敬的王站长,如有任何服务疑问,请及时与我们联系,10086将热忱提供支撑。感谢您对江西移动的支持。"
    assert post_call_text(record({**RURAL, "tier": "highend"}), policy, False) is None  # no template
    assert post_call_text(record({**RURAL, "blacklist": True}), policy, False) is None
    assert post_call_text(record(RURAL), policy, opted_out=True) is None
    assert post_call_text(record({**RURAL, "number": None}), policy, False) is None


def trigger_for(redis: Redis, pipe: RedisPipe, policy: Policy) -> PostCallSms:
    return PostCallSms(redis, KEYS.prefix, policy, CallRecords(pipe, KEYS.prefix, 600))


async def test_repeated_events_and_concurrent_bridges_queue_one_job(redis: Redis, pipe: RedisPipe,
                                                                      policy: Policy) -> None:
    await CallRecords(pipe, KEYS.prefix, 600).write(record(RURAL, "1.7", "1.6"))
    triggers = [trigger_for(redis, pipe, policy) for _ in range(3)]  # three bridges hearing the same events
    event = {"Event": "AgentComplete", "Uniqueid": "1.7", "Queue": "hotline-ordinary_easyown"}
    results = await asyncio.gather(*(t.on_event(event) for t in triggers for _ in range(3)))
    assert len([r for r in results if r]) == 1
    [(job_id, fields)] = await redis.xrange(KEYS.sms_jobs)
    assert (fields["kind"], fields["number"]) == ("post_call", "8613800000004")
    assert fields["text"].startswith("尊敬的王站长")
    assert await redis.get(KEYS.sms_post_call("1.6")) == job_id


async def test_opted_out_and_unknown_calls_get_nothing(redis: Redis, pipe: RedisPipe, policy: Policy) -> None:
    trigger = trigger_for(redis, pipe, policy)
    assert await trigger.on_event({"Event": "AgentComplete", "Uniqueid": "9.9"}) is None  # no call record
    await CallRecords(pipe, KEYS.prefix, 600).write(record(RURAL, "1.8"))
    await redis.sadd(KEYS.sms_optout, "8613800000004")
    assert await trigger.on_event({"Event": "AgentComplete", "Uniqueid": "1.8"}) is None
    assert await trigger.on_event({"Event": "Hangup", "Uniqueid": "1.8"}) is None
    assert await redis.xlen(KEYS.sms_jobs) == 0
