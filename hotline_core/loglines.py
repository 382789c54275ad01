"""Log lines as the service writes them: the fields of the call a task serves, the JSON line
with subscriber numbers masked, and the batch that writes lines together.

Apart from hotline_core.logs (structlog's configuration and bound logger) because this module is
compiled (see setup.py): `hotline serve` writes a line per call entry.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import MutableMapping
from contextvars import ContextVar
from typing import Any, BinaryIO, TextIO

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


class Prepare:
    """structlog processor, the first: the fields of the call this task serves (where the line
    does not set them itself), `level`, and `timestamp` in ISO 8601, UTC, to the microsecond
    (`2026-11-30T14:04:31.052311Z`). One processor rather than three, and the date and time of
    day formatted once a second: `hotline serve` logs a line per call entry."""

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def __call__(self, _logger: Any, method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        fields = _CALL_FIELDS.get()
        if fields:
            event = {**fields, **event}  # what the line sets wins
        event["level"] = _LEVEL_NAMES.get(method, method)
        second, nanoseconds = divmod(time.time_ns(), 1_000_000_000)
        if second != self._second:
            self._second = second
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        event["timestamp"] = f"{self._prefix}.{nanoseconds // 1000:06d}Z"
        return event


_LEVEL_NAMES = {"warn": "warning", "exception": "error"}  # structlog's method names that are not levels


def mask_numbers(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: mask number-bearing keys, long digit runs in the message itself, and
    cut any text field past MAX_FIELD_CHARS."""
    _mask(event)
    _cut_long_fields(event)
    return event


class JsonLine:
    """structlog's whole chain for JSON lines, in one processor: `Prepare`, an exception's
    traceback (structlog's format_exc_info, when the line has one), `mask_numbers`, then the
    line as JSON bytes. Only the keys that can hold a number are looked at, a message is
    searched for digits once (messages are mostly the same few texts), and the fields are
    searched for long text only when the rendered line is long: the same rules, at a fraction
    of the cost for the usual short line, which `hotline serve` writes at every call entry."""

    def __init__(self, prepare: Prepare, known_messages: int = 1024):
        self._prepare = prepare
        self._masked: dict[str, str] = {}  # message -> as logged
        self._known = known_messages

    def __call__(self, logger: Any, method: str, event: MutableMapping[str, Any]) -> bytes:
        event = self._prepare(logger, method, event)
        if "exc_info" in event:
            event = structlog.processors.format_exc_info(logger, method, event)
        _mask_number_keys(event)
        message = event.get("event")
        if isinstance(message, str):
            masked = self._masked.get(message)
            if masked is None:
                masked = mask_digits_in(message)
                if len(self._masked) < self._known:  # messages built with data do not fill it
                    self._masked[message] = masked
            event["event"] = masked
        line: bytes = orjson.dumps(event)
        if len(line) > MAX_FIELD_CHARS and _cut_long_fields(event):
            line = orjson.dumps(event)
        return line


def _mask(event: MutableMapping[str, Any]) -> None:
    _mask_number_keys(event)
    message = event.get("event")
    if isinstance(message, str):
        event["event"] = mask_digits_in(message)


def _mask_number_keys(event: MutableMapping[str, Any]) -> None:
    for key in NUMBER_KEYS.intersection(event):
        value = event[key]
        if value and isinstance(value, str):
            event[key] = mask_caller(value)


def _cut_long_fields(event: MutableMapping[str, Any]) -> bool:
    cut = False
    for key, value in event.items():
        # A traceback is ours, not a peer's, and is kept whole: it is what a bug is found by.
        if isinstance(value, str) and len(value) > MAX_FIELD_CHARS and key != "exception":
            event[key] = value[:MAX_FIELD_CHARS] + f"…({len(value)} chars)"
            cut = True
    return cut


class LineBatch:
    """A byte sink that gathers log lines written while an event loop runs and writes them
    together, `interval_s` after the first of a batch or as soon as `max_bytes` are held.
    `hotline serve` logs a line per call entry, and a write(2) per line (or per loop turn, at
    one call per turn) cost more CPU than building the line. Outside an event loop (CLI
    commands, start-up) each line goes straight out. A process killed outright loses at most
    the last `interval_s` of lines; one that exits normally writes them (atexit).

    It is also structlog's logger for JSON lines (`msg` and the level names), which spares a
    wrapper's lock and calls per line."""

    def __init__(self, out: BinaryIO | _TextBytes, interval_s: float = 0.05, max_bytes: int = 64 * 1024):
        self._out = out
        self._interval = interval_s
        self._max = max_bytes
        self._pending: list[bytes] = []
        self._held = 0
        # The loop whose timer will write the lines held (a loop that stopped before its timer
        # came, in tests or CLI commands, leaves them to the next loop's).
        self._timed_by: asyncio.AbstractEventLoop | None = None
        # Lines from other threads (work handed to a thread logs too) go straight out, past
        # the batch: one lock keeps a line and a batch from being written into each other.
        self._lock = threading.RLock()

    @staticmethod
    def over(stream: TextIO) -> LineBatch:
        """A batch writing to a text stream's byte buffer (or to the stream itself, as text,
        when it has none: io.StringIO in tests)."""
        buffer = getattr(stream, "buffer", None)
        return LineBatch(buffer if buffer is not None else _TextBytes(stream))

    def msg(self, line: bytes) -> None:
        """One rendered line, without its line end."""
        with self._lock:
            self.write(line + b"\n")
            self.flush()

    # structlog calls the logger's method named after the level; mypyc (this module is compiled)
    # takes no aliases in a class body, so each is written out.
    def debug(self, line: bytes) -> None:
        self.msg(line)

    def info(self, line: bytes) -> None:
        self.msg(line)

    def warning(self, line: bytes) -> None:
        self.msg(line)

    def warn(self, line: bytes) -> None:
        self.msg(line)

    def error(self, line: bytes) -> None:
        self.msg(line)

    def critical(self, line: bytes) -> None:
        self.msg(line)

    def fatal(self, line: bytes) -> None:
        self.msg(line)

    def exception(self, line: bytes) -> None:
        self.msg(line)

    def write(self, data: bytes) -> int:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.drain()  # lines held from a loop that has stopped go first, in order
            self._out.write(data)  # `msg` flushes next
            return len(data)
        if self._timed_by is not loop:
            self._timed_by = loop
            loop.call_later(self._interval, self.drain)
        self._pending.append(data)
        self._held += len(data)
        if self._held >= self._max:
            self.drain()  # the timer set for this batch then finds nothing, or the next batch early
        return len(data)

    def flush(self) -> None:
        if not self._pending:  # lines held are flushed with their batch
            self._out.flush()

    def drain(self) -> None:
        with self._lock:
            self._timed_by = None
            if self._pending:
                data, self._pending, self._held = b"".join(self._pending), [], 0
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
