"""A complaint filed from the agent's screen during a real call, in Chromium: the order carries
农村 and the call's linkedid; the handler's page lists it before lower tiers' orders; filtered
by 农村 and exported as XLSX, it reads back the same."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess

from openpyxl import load_workbook
from playwright.async_api import Browser

from ami_bridge.client import AmiClient
from tests.e2e.conftest import HANDLER, HOTLINE, ROOT, Events, Stack
from tests.e2e.test_sms import signed_in_page

Ami = tuple[AmiClient, Events]
ARTIFACTS = ROOT / "tests" / "artifacts"


def hotline(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HOTLINE_DATABASE_URL": stack.postgres.url(), "HOTLINE_REDIS_URL": stack.redis.url,
           "HOTLINE_POLICY_FILE": str(stack.bridge.policy_file)}
    return subprocess.run([HOTLINE, *args], env=env, capture_output=True, text=True, timeout=60, check=True)


async def test_a_complaint_from_a_live_call_to_the_handlers_export(stack: Stack, ami: Ami, browser: Browser,
                                                                  tmp_path: object) -> None:
    _, events = ami
    for n in (1, 2):  # orders of ordinary callers, filed earlier
        await asyncio.to_thread(hotline, stack, "workorders", "create", "--caller", f"1390000010{n}", "--category",
                                "network", "--text", "no signal at home")
    base = f"http://127.0.0.1:{stack.bridge.http_port}"
    pages = {agent: await signed_in_page(browser, base, agent) for agent in ("agent1", "agent2", "agent3")}
    await asyncio.sleep(0.5)
    call = asyncio.create_task(stack.call("13800000004", digits="0", wait_ms=300, talk_ms=9000))
    connected = await events.wait("AgentConnect", CallerIDNum="13800000004", within=15)
    page = pages[connected["Interface"].removeprefix("PJSIP/")]
    await page.wait_for_selector("#caller", state="visible", timeout=5000)
    assert await page.inner_text("#caller-special") == "农村"
    await page.select_option("#wo-category", "bill")
    await page.fill("#wo-description", "上月话费多扣了十元")
    await page.click("#wo-submit")
    await page.wait_for_selector("#wo-result[data-order]", timeout=5000)
    assert "农村" in await page.inner_text("#wo-result")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "agent-workorder.png"), full_page=True)
    order_id = int(await page.get_attribute("#wo-result", "data-order") or 0)
    await call
    listed = json.loads((await asyncio.to_thread(hotline, stack, "workorders", "list", "--special", "rural",
                                                 "--format", "json")).stdout)
    order = next(o for o in listed if o["id"] == order_id)
    assert (order["special_customer"], order["special_label"], order["linkedid"]) == (
        "rural", "农村", connected["Linkedid"])

    handler = await (await browser.new_context(accept_downloads=True)).new_page()
    await handler.goto(f"{base}/workorders")  # to the sign-in first
    await handler.fill("input[name=user]", HANDLER[0])
    await handler.fill("input[name=secret]", HANDLER[1])
    await handler.click("button[type=submit]")
    await handler.wait_for_selector("#orders tbody tr")
    first = await handler.get_attribute("#orders tbody tr:first-child", "data-id")
    assert first == str(order_id)  # 农村 (priority 60) before the ordinary callers' orders (50)
    await handler.select_option("select[name=special]", "rural")
    await handler.click("form[action='/workorders'] button[type=submit]")
    await handler.wait_for_url("**special=rural**")
    shown = [await row.get_attribute("data-id") for row in await handler.query_selector_all("#orders tbody tr")]
    assert str(order_id) in shown
    await handler.screenshot(path=str(ARTIFACTS / "handler-workorders.png"), full_page=True)
    async with handler.expect_download() as download_info:
        await handler.click("text=XLSX")
    path = ARTIFACTS / "workorders-rural.xlsx"
    await (await download_info.value).save_as(str(path))
    sheet = load_workbook(path).active
    assert sheet is not None
    rows = list(sheet.iter_rows(min_row=2, values_only=True))
    assert [str(r[0]) for r in rows] == shown
    assert all(r[2] == "农村" for r in rows)
