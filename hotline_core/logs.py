"""structlog set-up: one configuration for the whole process, subscriber numbers masked.

JSON lines in production (stdout collected by the service manager), a readable console on a TTY.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import sys
import threading
import time
from collections.abc import Mapping, MutableMapping
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


class LeanBoundLogger(structlog.BoundLoggerBase):
    """structlog's bound logger, minus what the filtering one spends between a call and the
    processors (three copies of the keywords, the empty context copied, a lookup of the level
    name): a third of a log line's CPU, and `hotline serve` writes one per call entry. The
    processors, `bind` and the rest are structlog's own; DropEvent (structlog.testing's
    capture) is honoured. Levels below `min_level` cost one comparison."""

    min_level = logging.INFO

    def _emit(self, level: int, method: str, event: str, args: tuple[Any, ...], kw: dict[str, Any]) -> None:
        if level < self.min_level:
            return
        if args:  # the printf style some callers use: "%s" % (value,)
            event = event % (args[0] if len(args) == 1 and isinstance(args[0], Mapping) else args)
        context = self._context
        event_dict: Any = {**context, **kw} if context else kw
        event_dict["event"] = event
        try:
            for processor in self._processors:
                event_dict = processor(self._logger, method, event_dict)
        except structlog.DropEvent:
            return
        write = getattr(self._logger, method)
        if isinstance(event_dict, (bytes, str, bytearray)):
            write(event_dict)
        elif isinstance(event_dict, tuple):
            write(*event_dict[0], **event_dict[1])
        else:
            write(**event_dict)

    def debug(self, event: str, *args: Any, **kw: Any) -> None:
        self._emit(logging.DEBUG, "debug", event, args, kw)

    def info(self, event: str, *args: Any, **kw: Any) -> None:
        self._emit(logging.INFO, "info", event, args, kw)

    def warning(self, event: str, *args: Any, **kw: Any) -> None:
        self._emit(logging.WARNING, "warning", event, args, kw)

    warn = warning

    def error(self, event: str, *args: Any, **kw: Any) -> None:
        self._emit(logging.ERROR, "error", event, args, kw)

    def exception(self, event: str, *args: Any, **kw: Any) -> None:
        kw.setdefault("exc_info", True)
        self._emit(logging.ERROR, "error", event, args, kw)

    def critical(self, event: str, *args: Any, **kw: Any) -> None:
        self._emit(logging.CRITICAL, "critical", event, args, kw)

    fatal = critical


def lean_bound_logger(min_level: int) -> type[LeanBoundLogger]:
    """LeanBoundLogger that drops lines below `min_level` (structlog's `wrapper_class`)."""
    return type("LeanBoundLogger", (LeanBoundLogger,), {"min_level": min_level})


def configure_logging(level: str = "info", fmt: str = "auto", stream: TextIO | None = None) -> None:
    """Configure structlog once per process; `stream` defaults to stderr so CLI output stays clean.

    JSON lines go out as bytes through orjson: the service writes one per call entry, and the
    standard json module costs half as much again."""
    out = stream or sys.stderr
    use_json = fmt == "json" or (fmt == "auto" and not out.isatty())
    processors: list[Any]
    if use_json:
        sink = LineBatch(out.buffer if hasattr(out, "buffer") else _TextBytes(out))
        atexit.register(sink.drain)
        factory: Any = lambda *_args: sink  # noqa: E731  (the sink is the logger: see LineBatch.msg)
        processors = [JsonLine(Prepare())]
    else:
        factory = structlog.PrintLoggerFactory(file=out)
        processors = [Prepare(), mask_numbers, structlog.processors.format_exc_info, structlog.dev.ConsoleRenderer()]
    structlog.configure(
        processors=processors,
        wrapper_class=lean_bound_logger(logging.getLevelNamesMapping()[level.upper()]),
        logger_factory=factory,
        cache_logger_on_first_use=True,
    )


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

    def msg(self, line: bytes) -> None:
        """One rendered line, without its line end."""
        with self._lock:
            self.write(line + b"\n")
            self.flush()

    debug = info = warning = warn = error = critical = fatal = exception = msg

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
