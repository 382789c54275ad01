"""structlog set-up: one configuration for the whole process, subscriber numbers masked.

JSON lines in production (stdout collected by the service manager), a readable console on a TTY.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import sys
import time
from collections.abc import MutableMapping
from contextvars import ContextVar
from typing import Any, BinaryIO, TextIO, cast

import orjson
import structlog

from hotline_core.numbers import mask_caller, mask_digits_in

# Keys that carry a subscriber number somewhere in the code base; their values never reach a log whole.
NUMBER_KEYS = frozenset({"caller", "number", "callerid", "msisdn", "destination", "to"})
MAX_FIELD_CHARS = 2000  # a peer's data (a 15 KB caller id, a huge error) cannot make a huge log line

# The fields of the call a task serves (peer, uniqueid, caller, tier): one variable holding a
# dict, set once per call, rather than structlog's variable per key. Binding and merging those
# cost more than a call entry's lookup. A ContextVar must live at module level (a variable made
# per call would leak); it holds no state of its own, each task's context does.
_CALL_FIELDS: ContextVar[dict[str, Any] | None] = ContextVar("hotline_call_fields", default=None)


def start_call_fields(**fields: Any) -> None:
    """Begin the log fields of the call this task serves: every line it (or a task it starts)
    logs from now on carries them. Whatever the task's context held before is not kept."""
    _CALL_FIELDS.set(fields)


def bind_call_fields(**fields: Any) -> None:
    """Add to the fields of the call this task serves (begun by `start_call_fields`)."""
    current = _CALL_FIELDS.get()
    if current is None:
        _CALL_FIELDS.set(fields)
    else:
        current.update(fields)


def merge_call_fields(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: the call's fields, where the line does not set them itself."""
    fields = _CALL_FIELDS.get()
    if fields:
        for key, value in fields.items():
            if key not in event:
                event[key] = value
    return event


class UtcStamp:
    """structlog processor: `timestamp` in ISO 8601, UTC, to the microsecond
    (`2026-11-30T14:04:31.052311Z`). The date and time of day are formatted once a second:
    formatting a datetime for every line cost a sixth of the line."""

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def __call__(self, _logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        second, nanoseconds = divmod(time.time_ns(), 1_000_000_000)
        if second != self._second:
            self._second = second
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        event["timestamp"] = f"{self._prefix}.{nanoseconds // 1000:06d}Z"
        return event


def mask_numbers(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: mask number-bearing keys, long digit runs in the message itself, and
    cut any text field past MAX_FIELD_CHARS."""
    for key, value in event.items():
        if value.__class__ is not str and not isinstance(value, str):  # the exact test first: it is cheaper
            continue
        if key in NUMBER_KEYS:
            if value:
                event[key] = mask_caller(value)
        elif len(value) > MAX_FIELD_CHARS:
            event[key] = value[:MAX_FIELD_CHARS] + f"…({len(value)} chars)"
    message = event.get("event")
    if isinstance(message, str):
        event["event"] = mask_digits_in(message)
    return event


def configure_logging(level: str = "info", fmt: str = "auto", stream: TextIO | None = None) -> None:
    """Configure structlog once per process; `stream` defaults to stderr so CLI output stays clean.

    JSON lines go out as bytes through orjson: the service writes one per call entry, and the
    standard json module costs half as much again."""
    out = stream or sys.stderr
    use_json = fmt == "json" or (fmt == "auto" and not out.isatty())
    renderer: Any
    if use_json:
        renderer = structlog.processors.JSONRenderer(serializer=orjson.dumps)
        sink = TurnBuffer(out.buffer if hasattr(out, "buffer") else _TextBytes(out))
        atexit.register(sink.drain)
        factory: Any = structlog.BytesLoggerFactory(cast(BinaryIO, sink))
    else:
        renderer = structlog.dev.ConsoleRenderer()
        factory = structlog.PrintLoggerFactory(file=out)
    structlog.configure(
        processors=[
            merge_call_fields,
            structlog.processors.add_log_level,
            UtcStamp(),
            mask_numbers,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level.upper()]),
        logger_factory=factory,
        cache_logger_on_first_use=True,
    )


class TurnBuffer:
    """A byte sink that gathers the lines written in one turn of the running event loop and
    writes them together when the turn ends. `hotline serve` logs a line per call entry, and a
    write(2) and flush per line cost more CPU than building the line. Outside an event loop
    (CLI commands, start-up) each line goes straight out. A process killed outright loses at
    most the current turn's lines; one that exits normally writes them (atexit)."""

    def __init__(self, out: BinaryIO | _TextBytes):
        self._out = out
        self._pending: list[bytes] = []

    def write(self, data: bytes) -> int:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._out.write(data)  # BytesLogger flushes next
            return len(data)
        if not self._pending:
            loop.call_soon(self.drain)
        self._pending.append(data)
        return len(data)

    def flush(self) -> None:
        if not self._pending:  # lines of this turn are flushed with the turn
            self._out.flush()

    def drain(self) -> None:
        if self._pending:
            data, self._pending = b"".join(self._pending), []
            self._out.write(data)
            self._out.flush()


class _TextBytes:
    """Lets a text stream without a byte buffer (io.StringIO in tests) take the JSON bytes."""

    def __init__(self, text: TextIO):
        self._text = text

    def write(self, data: bytes) -> int:
        return self._text.write(data.decode("utf-8"))

    def flush(self) -> None:
        self._text.flush()
