import io
import json

import structlog

from hotline_core.logs import configure_logging


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
