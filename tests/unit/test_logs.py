import asyncio
import io
import json
import re
import time
from datetime import UTC, datetime

import structlog

from hotline_core.logs import LineBatch, bind_call_fields, configure_logging, start_call_fields


def test_json_logs_mask_numbers_from_context_and_message() -> None:
    stream = io.StringIO()
    configure_logging("info", "json", stream)
    try:
        start_call_fields(caller="13800000001", uniqueid="1732262400.1")
        structlog.get_logger("t").info("call from 8613800000001 entered", tier="highend")
    finally:
        start_call_fields()
        structlog.reset_defaults()
    line = json.loads(stream.getvalue())
    assert line["caller"] == "138****0001"
    assert line["event"] == "call from 86138****0001 entered"
    assert line["uniqueid"] == "1732262400.1"  # not a subscriber number: left alone
    assert "13800000001" not in stream.getvalue()


def test_caller_ids_are_masked_by_their_digits_whatever_surrounds_them_and_capped() -> None:
    stream = io.StringIO()
    configure_logging("info", "json", stream)
    try:
        log = structlog.get_logger("t")
        log.info("a", caller="13800000004' OR '1'='1")
        log.info("b", caller="+86 138 0000 0004")
        log.info("c", caller="x" * 15_000)
        log.info("d", error="e" * 15_000)
        try:
            raise ValueError("x" * 3000)
        except ValueError:
            log.exception("e")
    finally:
        structlog.reset_defaults()
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert lines[0]["caller"] == "13800****0411 (+other characters)"  # its digits, the middle hidden
    assert lines[1]["caller"] == "86138****0004"
    assert len(lines[2]["caller"]) < 80
    assert len(lines[3]["error"]) < 2100
    assert "x" * 3000 in lines[4]["exception"]  # a traceback is kept whole
    assert "13800000004" not in stream.getvalue()
    assert "0000 0004" not in stream.getvalue()


class CountingSink:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.flushes = 0

    def write(self, data: bytes) -> int:
        self.writes.append(data)
        return len(data)

    def flush(self) -> None:
        self.flushes += 1


def test_lines_go_out_together_a_batch_interval_after_the_first() -> None:
    out = CountingSink()
    sink = LineBatch(out, interval_s=0.05)

    async def lines() -> tuple[list[bytes], list[bytes]]:
        for i in range(3):
            sink.write(f"line {i}\n".encode())
            sink.flush()  # what structlog's BytesLogger does after each line
            await asyncio.sleep(0.005)  # several loop turns within the interval
        held = list(out.writes)
        await asyncio.sleep(0.08)
        return held, list(out.writes)

    held, written = asyncio.run(lines())
    assert held == []  # nothing written within the interval
    assert written == [b"line 0\nline 1\nline 2\n"]
    assert out.flushes == 1


def test_a_full_batch_goes_out_at_once() -> None:
    out = CountingSink()
    sink = LineBatch(out, interval_s=10.0, max_bytes=100)

    async def lines() -> None:
        for _ in range(3):
            sink.write(b"x" * 40 + b"\n")

    asyncio.run(lines())
    assert out.writes == [b"x" * 40 + b"\n" + b"x" * 40 + b"\n" + b"x" * 40 + b"\n"]  # at 123 bytes held


def test_outside_an_event_loop_each_line_goes_out_at_once() -> None:
    out = CountingSink()
    sink = LineBatch(out)
    sink.write(b"a\n")
    sink.flush()
    assert out.writes == [b"a\n"]
    assert out.flushes == 1
    sink.drain()  # at exit: nothing held, nothing written twice
    assert out.writes == [b"a\n"]


def test_lines_held_when_the_process_exits_are_written_by_drain() -> None:
    out = CountingSink()
    sink = LineBatch(out)

    async def log_and_stop() -> None:
        sink.write(b"last words\n")

    loop = asyncio.new_event_loop()
    loop.run_until_complete(log_and_stop())
    loop.close()
    sink.drain()  # what atexit does: the line goes out once, whether or not its batch's time came
    assert out.writes == [b"last words\n"]


def test_each_call_task_logs_its_own_fields_and_a_line_keeps_what_it_sets() -> None:
    stream = io.StringIO()
    configure_logging("info", "json", stream)
    log = structlog.get_logger("t")
    both_started = asyncio.Event()

    async def call(uniqueid: str, tier: str) -> None:
        start_call_fields(peer=f"127.0.0.1:{uniqueid[-1]}")
        bind_call_fields(uniqueid=uniqueid)
        if not both_started.is_set():
            both_started.set()
        await asyncio.sleep(0.01)  # the other call binds its fields meanwhile
        bind_call_fields(tier=tier)
        log.info("entered", tier="from the line")
        log.info("left")

    async def two_calls() -> None:
        await asyncio.gather(call("1.1", "highend"), call("1.2", "campus"))

    try:
        asyncio.run(two_calls())
        log.info("after the calls")  # the main task started no call: no call fields
    finally:
        structlog.reset_defaults()
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    by_call = {(line["uniqueid"], line["event"]): line for line in lines if "uniqueid" in line}
    assert by_call[("1.1", "entered")]["tier"] == "from the line"
    assert by_call[("1.1", "left")]["tier"] == "highend"
    assert by_call[("1.2", "left")]["tier"] == "campus"
    assert by_call[("1.2", "left")]["peer"] == "127.0.0.1:2"
    assert "uniqueid" not in lines[-1]
    assert lines[-1]["event"] == "after the calls"


def test_timestamps_are_utc_iso_to_the_microsecond_and_follow_the_clock() -> None:
    stream = io.StringIO()
    configure_logging("info", "json", stream)
    try:
        before = datetime.now(UTC)
        for _ in range(3):
            structlog.get_logger("t").info("tick")
            time.sleep(0.4)  # crosses at least one second boundary
        after = datetime.now(UTC)
    finally:
        structlog.reset_defaults()
    stamps = [json.loads(line)["timestamp"] for line in stream.getvalue().splitlines()]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", stamp) for stamp in stamps), stamps
    times = [datetime.fromisoformat(stamp.replace("Z", "+00:00")) for stamp in stamps]
    assert before <= times[0] < times[1] < times[2] <= after


def test_lines_left_by_a_loop_that_stopped_go_out_with_the_next_loops() -> None:
    out = CountingSink()
    sink = LineBatch(out, interval_s=0.05)

    async def one_line(text: bytes, wait_s: float) -> None:
        sink.write(text)
        await asyncio.sleep(wait_s)

    asyncio.run(one_line(b"first\n", 0))  # the loop ends before its batch's time
    assert out.writes == []
    asyncio.run(one_line(b"second\n", 0.1))
    assert out.writes == [b"first\nsecond\n"]


def test_the_lean_logger_filters_levels_binds_interpolates_and_records_exceptions() -> None:
    stream = io.StringIO()
    configure_logging("warning", "json", stream)
    try:
        log = structlog.get_logger("t").bind(component="ami")
        log.info("below the level")
        log.debug("below the level too")
        log.warning("queue %s is slow", "vip", waited_s=3)
        log.error("%(what)s failed", {"what": "sms"})
        try:
            raise ValueError("bad row")
        except ValueError:
            log.exception("import stopped", line=7)
        log.critical("out of room", component="disk")  # the line's own value wins over the bound one
    finally:
        structlog.reset_defaults()
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(line["level"], line["event"]) for line in lines] == [
        ("warning", "queue vip is slow"), ("error", "sms failed"), ("error", "import stopped"),
        ("critical", "out of room")]
    assert [line["component"] for line in lines] == ["ami", "ami", "ami", "disk"]
    assert lines[0]["waited_s"] == 3
    assert "ValueError: bad row" in lines[2]["exception"]
    assert lines[2]["line"] == 7


def test_captured_lines_are_not_written() -> None:
    stream = io.StringIO()
    configure_logging("info", "json", stream)
    try:
        log = structlog.get_logger("t")
        with structlog.testing.capture_logs() as captured:
            log.info("captured", n=1)
        log.info("written")
    finally:
        structlog.reset_defaults()
    assert captured == [{"event": "captured", "n": 1, "log_level": "info"}]
    assert [json.loads(line)["event"] for line in stream.getvalue().splitlines()] == ["written"]


def test_messages_are_masked_every_time_whether_or_not_they_were_seen_before() -> None:
    stream = io.StringIO()
    configure_logging("info", "json", stream)
    try:
        log = structlog.get_logger("t")
        for i in range(1100):  # more distinct messages than are kept
            log.info(f"sms to 86138{i:08d} failed")
        log.info("sms to 8613800000001 failed")  # seen before: kept, and masked all the same
        log.info("sms to 8613800000001 failed")
    finally:
        structlog.reset_defaults()
    events = [json.loads(line)["event"] for line in stream.getvalue().splitlines()]
    assert len(events) == 1102
    assert all(re.fullmatch(r"sms to \d+\*{4}\d{4} failed", event) for event in events), events[:3]
    assert events[-1] == events[-2] == "sms to 86138****0001 failed"
