"""The post-call trigger: one SMS per call however often the AMI events arrive."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from hotline.calls import CallRecord
from hotline.policy import Policy
from hotline.sms.postcall import PostCallSms, post_call_text

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


async def test_repeated_events_and_concurrent_bridges_queue_one_job(redis: Redis, policy: Policy) -> None:
    await redis.hset("pc:call:1.7", mapping=record(RURAL, "1.7", "1.6").to_hash())  # type: ignore[arg-type]
    triggers = [PostCallSms(redis, "pc", policy) for _ in range(3)]  # three bridges hearing the same events
    event = {"Event": "AgentComplete", "Uniqueid": "1.7", "Queue": "hotline-ordinary_easyown"}
    results = await asyncio.gather(*(t.on_event(event) for t in triggers for _ in range(3)))
    assert len([r for r in results if r]) == 1
    [(job_id, fields)] = await redis.xrange("pc:sms:jobs")
    assert (fields["kind"], fields["number"]) == ("post_call", "8613800000004")
    assert fields["text"].startswith("尊敬的王站长")
    assert await redis.get("pc:sms:postcall:1.6") == job_id


async def test_opted_out_and_unknown_calls_get_nothing(redis: Redis, policy: Policy) -> None:
    trigger = PostCallSms(redis, "pc", policy)
    assert await trigger.on_event({"Event": "AgentComplete", "Uniqueid": "9.9"}) is None  # no call record
    await redis.hset("pc:call:1.8", mapping=record(RURAL, "1.8").to_hash())  # type: ignore[arg-type]
    await redis.sadd(trigger.optout_key, "8613800000004")
    assert await trigger.on_event({"Event": "AgentComplete", "Uniqueid": "1.8"}) is None
    assert await trigger.on_event({"Event": "Hangup", "Uniqueid": "1.8"}) is None
    assert await redis.xlen("pc:sms:jobs") == 0
