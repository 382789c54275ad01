import asyncio
import io
import json

import structlog

from hotline_core.logs import TurnBuffer, configure_logging


def test_json_logs_mask_numbers_from_context_and_message() -> None:
    stream = io.StringIO()
    configure_logging("info", "json", stream)
    try:
        structlog.contextvars.bind_contextvars(caller="13800000001", uniqueid="1732262400.1")
        structlog.get_logger("t").info("call from 8613800000001 entered", tier="highend")
    finally:
        structlog.contextvars.clear_contextvars()
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
    finally:
        structlog.reset_defaults()
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert lines[0]["caller"] == "13800****0411 (+other characters)"  # its digits, the middle hidden
    assert lines[1]["caller"] == "86138****0004"
    assert len(lines[2]["caller"]) < 80
    assert len(lines[3]["error"]) < 2100
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


def test_lines_of_one_loop_turn_go_out_in_one_write_when_the_turn_ends() -> None:
    out = CountingSink()
    sink = TurnBuffer(out)

    async def turn() -> list[bytes]:
        for i in range(3):
            sink.write(f"line {i}\n".encode())
            sink.flush()  # what structlog's BytesLogger does after each line
        held = list(out.writes)
        await asyncio.sleep(0)  # the turn ends
        return held

    held = asyncio.run(turn())
    assert held == []  # nothing written while the turn ran
    assert out.writes == [b"line 0\nline 1\nline 2\n"]
    assert out.flushes == 1


def test_outside_an_event_loop_each_line_goes_out_at_once() -> None:
    out = CountingSink()
    sink = TurnBuffer(out)
    sink.write(b"a\n")
    sink.flush()
    assert out.writes == [b"a\n"]
    assert out.flushes == 1
    sink.drain()  # at exit: nothing held, nothing written twice
    assert out.writes == [b"a\n"]


def test_lines_held_when_the_process_exits_are_written_by_drain() -> None:
    out = CountingSink()
    sink = TurnBuffer(out)

    async def log_and_stop() -> None:
        sink.write(b"last words\n")

    loop = asyncio.new_event_loop()
    loop.run_until_complete(log_and_stop())
    loop.close()
    sink.drain()  # what atexit does: the line goes out once, whether or not the turn ended
    assert out.writes == [b"last words\n"]
