"""The `ivr` route driven by a scripted Asterisk peer: prompts, digits, SMS, hang-ups, records."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest
from redis.asyncio import Redis
from structlog.testing import capture_logs

from harness.agi_peer import environment, play
from harness.redis_server import RedisServer
from hotline.app import build_agi_server, flow_registry, open_services
from hotline_core.keys import RedisKeys
from hotline_core.policy import Policy
from hotline_core.settings import Settings
from tests.conftest import row_context
from tier_lookup.importer import ImportOptions, import_table

Agi = tuple[str, int]


@pytest.fixture
async def agi(redis_server: RedisServer, redis: Redis, policy: Policy) -> AsyncIterator[Agi]:
    settings = Settings(redis_url=redis_server.url, redis_prefix="ivrtest", agi_port=0)
    async with open_services(settings) as services:
        for table, text in {"rural": "number,name\n13800000004,王\n", "brand": "number,brand\n13800000005,gotone\n"}.items():
            assert (await import_table(services.store, table, text.encode(), table, row_context(policy),
                                       ImportOptions())).ok
        server = build_agi_server(services, flow_registry(settings))
        host, port = await server.start("127.0.0.1", 0)
        yield host, port
        await server.stop()


def asterisk(digits: list[str], pressed_during_prompt: str = "") -> Callable[[int, bytes], bytes]:
    """Answers like Asterisk: EXEC ok, STREAM FILE played (or interrupted), GET DATA with digits."""
    pending = list(digits)
    barge = [pressed_during_prompt] if pressed_during_prompt else []

    def answer(_index: int, command: bytes) -> bytes:
        if command.startswith(b'STREAM FILE'):
            if barge:
                return f"200 result={ord(barge.pop())} endpos=800\n".encode()
            return b"200 result=0 endpos=8000\n"
        if command.startswith(b"GET DATA"):
            value = pending.pop(0) if pending else ""
            return f"200 result={value}\n".encode() if value else b"200 result= (timeout)\n"
        return b"200 result=0\n"

    return answer


async def test_two_menus_to_billing_sets_the_transfer_and_records_the_path(agi: Agi, redis: Redis) -> None:
    result = await play(*agi, environment("ivr", "13800000004", "1.10"), asterisk(["1", "2"]))
    variables = result.variables()
    assert variables["HOTLINE_TIER"] == "rural"
    assert (variables["HOTLINE_IVR_RESULT"], variables["HOTLINE_SERVICE"], variables["HOTLINE_QUEUE"]) == (
        "transfer", "billing", "hotline-ordinary_easyown")
    assert variables["HOTLINE_IVR_PATH"] == "screen>welcome>main_menu>bill_menu>billing"
    prompts = [c for c in result.commands if c.startswith((b"STREAM FILE", b"GET DATA"))]
    assert prompts[0] == b'STREAM FILE "hello-world" "0123456789*#"'  # the rural liaison's welcome
    assert prompts[1] == b'GET DATA "demo-enterkeywords" "5000" "1"'
    record = await redis.hgetall("ivrtest:call:1.10")
    assert record["ivr_outcome"] == "transfer"
    assert record["service"] == "billing"
    assert record["flow_version"] == variables["HOTLINE_FLOW_VERSION"]


async def test_self_service_sms_is_queued_for_delivery(agi: Agi, redis: Redis) -> None:
    result = await play(*agi, environment("ivr", "13800000004", "1.11"), asterisk(["1", "1"]))
    assert result.variables()["HOTLINE_IVR_RESULT"] == "hangup"
    [(_, job)] = await redis.xrange(RedisKeys("ivrtest").sms_jobs)
    assert (job["kind"], job["number"], job["uniqueid"]) == ("self_service", "8613800000004", "1.11")
    assert job["text"].startswith("农村客户您好")


async def test_a_digit_during_the_welcome_skips_the_menu_prompt(agi: Agi) -> None:
    result = await play(*agi, environment("ivr", "13800000006", "1.12"), asterisk([], pressed_during_prompt="5"))
    assert result.variables()["HOTLINE_SERVICE"] == "complaints"
    assert not [c for c in result.commands if c.startswith(b"GET DATA")]


async def test_caller_hanging_up_in_the_menu_ends_quietly_and_says_where(agi: Agi, redis: Redis) -> None:
    def answer(index: int, command: bytes) -> bytes:
        if command.startswith(b"GET DATA"):
            return b"HANGUP\n200 result=-1\n"
        return asterisk([])(index, command)

    with capture_logs() as logs:
        result = await play(*agi, environment("ivr", "13800000006", "1.13"), answer)
    assert "HOTLINE_IVR_RESULT" not in result.variables()
    assert any(e["event"] == "caller left in the IVR" for e in logs), logs
    assert not any(e["log_level"] == "error" for e in logs), logs
    record = await redis.hgetall("ivrtest:call:1.13")
    assert record["ivr_outcome"] == "hung up in IVR"
    assert record["ivr_path"] == "hotline:screen>hotline:welcome>hotline:main_menu"


async def test_vip_goes_straight_to_agents(agi: Agi) -> None:
    result = await play(*agi, environment("ivr", "13800000005", "1.14"), asterisk([]))
    variables = result.variables()
    assert (variables["HOTLINE_LEVEL"], variables["HOTLINE_SERVICE"]) == ("gotone_vip", "vip")
    assert not [c for c in result.commands if c.startswith(b"GET DATA")]


def survey_env(uniqueid: str, agent: str = "agent1") -> bytes:
    return environment("survey", "13800000004", uniqueid,
                       {"agi_arg_1": uniqueid, **({"agi_arg_2": agent} if agent else {})})


async def test_the_survey_records_the_key_with_the_agent_who_answered(agi: Agi, redis: Redis) -> None:
    await play(*agi, environment("ivr", "13800000004", "1.20"), asterisk(["0"]))  # the call's entry
    result = await play(*agi, survey_env("1.20"), asterisk(["3"]))
    prompts = [c for c in result.commands if c.startswith((b"STREAM FILE", b"GET DATA"))]
    assert prompts == [b'GET DATA "vm-press" "5000" "1"', b'STREAM FILE "queue-thankyou" "0123456789*#"']
    record = await redis.hgetall("ivrtest:call:1.20")
    assert (record["survey_result"], record["survey"], record["survey_label"], record["survey_satisfied"],
            record["agent"]) == ("answered", "3", "不满意", "0", "agent1")


@pytest.mark.parametrize(("digits", "hang_up", "expected"), [
    (["9", "9"], False, "invalid"),  # twice off the scale
    ([], False, "no answer"),
    ([], True, "hung up"),
    (["9", "1"], False, "answered"),  # asked again after a key off the scale
])
async def test_what_the_caller_does_at_the_survey_is_recorded_as_such(
        agi: Agi, redis: Redis, digits: list[str], hang_up: bool, expected: str) -> None:
    uid = f"1.2{len(digits)}{int(hang_up)}"
    await play(*agi, environment("ivr", "13800000004", uid), asterisk(["0"]))

    scripted = asterisk(digits)

    def answer(index: int, command: bytes) -> bytes:
        if hang_up and command.startswith(b"GET DATA"):
            return b"HANGUP\n200 result=-1\n"
        return scripted(index, command)

    with capture_logs() as logs:
        await play(*agi, survey_env(uid), answer)
    assert (await redis.hgetall(f"ivrtest:call:{uid}"))["survey_result"] == expected
    assert not any(e["log_level"] == "error" for e in logs), logs


async def test_a_call_no_agent_answered_is_not_surveyed(agi: Agi, redis: Redis) -> None:
    await play(*agi, environment("ivr", "13800000004", "1.30"), asterisk(["0"]))
    result = await play(*agi, survey_env("1.30", agent=""), asterisk(["1"]))
    assert not [c for c in result.commands if c.startswith((b"STREAM FILE", b"GET DATA"))]
    assert "survey_result" not in await redis.hgetall("ivrtest:call:1.30")
