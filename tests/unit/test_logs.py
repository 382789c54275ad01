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
