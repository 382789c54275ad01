"""The rural liaison's call end to end: the agent's screen in a real browser, then exactly one
thank-you SMS through real Kannel with its delivery report."""

from __future__ import annotations

import asyncio

from playwright.async_api import Browser, Page
from redis.asyncio import Redis

from ami_bridge.client import AmiClient
from harness.kannel import delivered
from harness.waiting import until
from hotline_core.keys import RedisKeys
from tests.e2e.conftest import ROOT, Events, Stack

Ami = tuple[AmiClient, Events]
KEYS = RedisKeys("hl")
GREETING = "尊敬的王站长,你好,有什么可以帮到您"
THANKS = "尊敬的王站长,如有任何服务疑问,请及时与我们联系,10086将热忱提供支撑。感谢您对江西移动的支持。"
ARTIFACTS = ROOT / "tests" / "artifacts"
async def signed_in_page(browser: Browser, base: str, agent: str) -> Page:
    page = await (await browser.new_context()).new_page()
    await page.goto(f"{base}/agent")
    await page.fill("input[name=agent_id]", agent)
    await page.fill("input[name=secret]", f"{agent}-screen")
    await page.click("button[type=submit]")
    await page.wait_for_selector("#idle", state="visible")
    return page


async def test_rural_liaison_screen_pop_then_one_thank_you_sms(stack: Stack, ami: Ami, browser: Browser) -> None:
    _, events = ami
    base = f"http://127.0.0.1:{stack.bridge.http_port}"
    pages = {agent: await signed_in_page(browser, base, agent) for agent in ("agent1", "agent2", "agent3")}
    await asyncio.sleep(0.5)  # every page's event stream is open
    before = len(delivered(stack.kannel.delivered_log))
    call = asyncio.create_task(stack.call("13800000004", digits="0", wait_ms=300, talk_ms=4000))
    connected = await events.wait("AgentConnect", CallerIDNum="13800000004", within=15)
    agent = connected["Interface"].removeprefix("PJSIP/")
    page = pages[agent]
    await page.wait_for_selector("#greeting", state="visible", timeout=1000)  # within a second of the connect
    assert await page.inner_text("#greeting") == GREETING
    assert await page.inner_text("#special_customer") == "农村"
    assert await page.inner_text("#number") == "86138****0004"
    assert "main_menu" in await page.inner_text("#ivr_path")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "agent-screen.png"))
    for other, other_page in pages.items():
        if other != agent:
            assert not await other_page.is_visible("#call")  # each agent sees only their own calls
    assert (await call).returncode == 0
    await page.wait_for_selector("#call", state="hidden", timeout=5000)  # cleared when the call ends

    await until(lambda: len(delivered(stack.kannel.delivered_log)) > before, "the thank-you SMS at the SMSC")
    await asyncio.sleep(2.0)  # time for a second copy to show up, if one were sent
    assert delivered(stack.kannel.delivered_log)[before:] == [("8613800000004", THANKS)]
    redis = Redis.from_url(stack.redis.url, decode_responses=True)
    try:
        job = await redis.get(KEYS.sms_post_call(connected["Linkedid"]))
        assert job
        async def status() -> bool:
            return await redis.hget(KEYS.sms_state(job), "status") == "delivered"

        await until(status, "the SMS's delivery report", 5)
    finally:
        await redis.aclose()
