"""The rural liaison's post-call SMS, end to end: real call, real agent, real Kannel."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from ami_bridge.client import AmiClient
from hotline.stack.kannel import delivered
from tests.e2e.conftest import Events, Stack

Ami = tuple[AmiClient, Events]
THANKS = "尊敬的王站长,如有任何服务疑问,请及时与我们联系,10086将热忱提供支撑。感谢您对江西移动的支持。"


async def test_a_rural_liaison_gets_exactly_one_thank_you_sms_with_its_report(stack: Stack, ami: Ami) -> None:
    _, events = ami
    before = len(delivered(stack.kannel.delivered_log))
    result = await stack.call("13800000004", digits="0", wait_ms=300, talk_ms=2500)
    assert result.returncode == 0, result.output
    channel = events.caller_channel("13800000004")
    await events.wait("AgentComplete", Uniqueid=channel["Uniqueid"], within=10)
    for _ in range(100):
        if len(delivered(stack.kannel.delivered_log)) > before:
            break
        await asyncio.sleep(0.1)
    await asyncio.sleep(2.0)  # time for a second copy to show up, if one were sent
    received = delivered(stack.kannel.delivered_log)[before:]
    assert received == [("8613800000004", THANKS)]
    redis = Redis.from_url(stack.redis.url, decode_responses=True)
    try:
        job = await redis.get(f"hl:sms:postcall:{channel['Linkedid']}")
        assert job
        for _ in range(50):
            if await redis.hget(f"hl:sms:state:{job}", "status") == "delivered":
                break
            await asyncio.sleep(0.1)
        assert await redis.hget(f"hl:sms:state:{job}", "status") == "delivered"
    finally:
        await redis.aclose()
