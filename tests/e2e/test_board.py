"""The supervisors' live board and the metrics against real calls through real Asterisk: a VIP
caller waiting while every agent is paused, then answered; another abandoning; the board (in
Chromium) and /metrics agree with the call records, and the level turns red under its target."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess

import aiohttp
import asyncpg
import pytest
from playwright.async_api import Browser, Page

from ami_bridge.client import AmiClient
from harness.waiting import until
from tests.e2e.conftest import HOTLINE, METRICS_TOKEN, ROOT, SUPERVISOR, Events, Stack, pause_all

Ami = tuple[AmiClient, Events]
ARTIFACTS = ROOT / "tests" / "artifacts"


@pytest.fixture
async def board(stack: Stack, browser: Browser) -> Page:
    page = await (await browser.new_context(viewport={"width": 1100, "height": 900})).new_page()
    await page.goto(f"http://127.0.0.1:{stack.bridge.http_port}/board")  # sends us to sign in first
    await page.fill("input[name=user]", SUPERVISOR[0])
    await page.fill("input[name=secret]", SUPERVISOR[1])
    await page.click("button[type=submit]")
    await page.wait_for_selector("tr[data-level=gotone_vip]")
    return page


async def metrics(stack: Stack) -> dict[str, float]:
    async with aiohttp.ClientSession() as session, session.get(
            f"http://127.0.0.1:{stack.bridge.http_port}/metrics",
            headers={"Authorization": f"Bearer {METRICS_TOKEN}"}) as reply:
        text = await reply.text()
    return {line.rpartition(" ")[0]: float(line.rpartition(" ")[2]) for line in text.splitlines()
            if line and not line.startswith("#")}


async def cell(page: Page, level: str, column: int) -> str:
    return (await page.inner_text(f"tr[data-level={level}] td:nth-child({column})")).strip()


async def test_the_board_and_metrics_follow_real_calls(stack: Stack, ami: Ami, board: Page) -> None:
    client, events = ami
    waiting_metric = 'hotline_queue_callers_waiting{level="gotone_vip"}'
    await pause_all(client, True)
    try:
        call = asyncio.create_task(stack.call("13800000005", wait_ms=300, talk_ms=14000))  # waits ~10 s, then talks
        await events.wait("QueueCallerJoin", within=15, CallerIDNum="13800000005")

        async def one_waiting() -> bool:
            return await cell(board, "gotone_vip", 2) == "1" and (await metrics(stack)).get(waiting_metric) == 1.0

        async def desk_paused() -> bool:  # agent1, the VIP desk, is paused
            return await board.inner_text("tr[data-desk=vip_desk] td:nth-child(4)") == "1"

        await until(one_waiting, "the waiting VIP caller on the board and in /metrics", within=3)
        await until(desk_paused, "the paused VIP desk agent on the board", within=3)
        # The caller is on record as waiting, and the board has refreshed today's figures since
        # (every 5 s), still within the level's 15 s: a caller waiting within the threshold is
        # not counted yet, so the quiet level does not turn red.
        conn = await asyncpg.connect(stack.postgres.url())
        try:
            await until(lambda: conn.fetchval("SELECT count(*) FROM calls WHERE number = '8613800000005' "
                                              "AND queue_outcome = 'waiting'"), "the waiting call on record", 5)
        finally:
            await conn.close()
        await asyncio.sleep(5.5)
        assert await board.get_attribute("tr[data-level=gotone_vip]", "class") != "below"
    finally:
        await pause_all(client, False)
    await events.wait("AgentConnect", within=10, CallerIDNum="13800000005")

    async def none_waiting() -> bool:
        return await cell(board, "gotone_vip", 2) == "0"

    await until(none_waiting, "the answered caller to leave the waiting count", within=3)
    await call
    # An abandon: every agent paused, the caller hangs up after about three seconds.
    await pause_all(client, True)
    try:
        await stack.call("13800000005", wait_ms=300, talk_ms=3000)
    finally:
        await pause_all(client, False)

    async def red() -> bool:
        return await board.get_attribute("tr[data-level=gotone_vip]", "class") == "below"

    await until(red, "the VIP level to turn red under its 95% target", within=20)
    report = await asyncio.to_thread(
        subprocess.run, [HOTLINE, "report", "--by", "level", "--format", "json"], capture_output=True, text=True,
        check=True, env={**os.environ, "HOTLINE_DATABASE_URL": stack.postgres.url(),
                         "HOTLINE_POLICY_FILE": str(stack.bridge.policy_file)})
    vip = next(row for row in json.loads(report.stdout) if row["level"] == "gotone_vip")
    assert vip["abandoned"] >= 1
    assert vip["service_level"] < 0.95

    async def agrees() -> bool:
        shown = tuple([await cell(board, "gotone_vip", column) for column in (4, 5, 6, 7, 8)])
        return shown == (str(vip["offered"]), str(vip["answered"]), str(vip["abandoned"]), str(vip["released"]),
                         f"{vip['service_level'] * 100:.1f}%")

    await until(agrees, f"the board to show the records' figures {vip}", within=10)
    scraped = await metrics(stack)
    assert scraped['hotline_level_offered_today{level="gotone_vip"}'] == vip["offered"]
    assert scraped['hotline_level_service_level_today{level="gotone_vip"}'] == pytest.approx(vip["service_level"])
    assert scraped['hotline_call_entries_total{level="gotone_vip",tier="normal"}'] >= 2
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await board.screenshot(path=str(ARTIFACTS / "board.png"), full_page=True)


async def test_the_board_says_when_its_live_stream_is_lost_and_when_it_is_back(board: Page) -> None:
    warning = board.locator("#lost")
    assert await warning.is_hidden()
    await board.route("**/board/events", lambda route: route.abort())
    await board.reload()
    await warning.wait_for(state="visible", timeout=10_000)
    assert "The live connection is lost; reconnecting" in await warning.inner_text()
    await board.unroute("**/board/events")
    await warning.wait_for(state="hidden", timeout=15_000)  # the browser's retry brings the next picture
    await board.wait_for_selector("tr[data-level=gotone_vip]")
