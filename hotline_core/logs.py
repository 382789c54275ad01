"""structlog set-up: one configuration for the whole process, subscriber numbers masked.

JSON lines in production (stdout collected by the service manager), a readable console on a TTY.
The JSON line's processor, its masking and the batch that writes lines are in
hotline_core.loglines, which is compiled; what stays here subclasses structlog's classes at run
time, which compiled classes cannot be.
"""

from __future__ import annotations

import atexit
import logging
import sys
from collections.abc import Mapping
from typing import Any, TextIO

import structlog

# The call fields' functions are the service's to use through this module; they live with the
# line's processor, which reads them.
from hotline_core.loglines import JsonLine, LineBatch, Prepare, bind_call_fields, mask_numbers, start_call_fields

__all__ = ["LeanBoundLogger", "LineBatch", "bind_call_fields", "configure_logging", "lean_bound_logger",
           "start_call_fields"]


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
        sink = LineBatch.over(out)
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


