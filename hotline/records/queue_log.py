"""Asterisk's queue_log, parsed (pure: bytes in, rows out; no file or database here).

Each line is `time|callid|queue|agent|event|data1|data2|...`, written by app_queue itself, so
what happened in a queue is counted even while `hotline serve` or its AMI link was down. The
reader hands in what it read from a byte offset; complete lines come back as rows with their
own offsets (the row's identity in the file), a trailing partial line is left for next time,
and a line that is not queue_log is reported with its offset rather than stopping the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

MAX_LINE_BYTES = 8192  # app_queue's lines are short; anything longer is not queue_log
# The times a line may carry at most (2000 to 2100): a line from outside them is not Asterisk's.
# The reader narrows this to the records' sanity window around today (hotline.records.facts.
# sane_window): a line of 2090 is as wrong, and would get a partition of its own.
EARLIEST, LATEST = 946_684_800, 4_102_444_800
INT4 = 2**31 - 1  # counts and seconds are stored as PostgreSQL integers


@dataclass(frozen=True, slots=True)
class QueueLogRow:
    offset: int  # where the line starts in its file
    at: int  # epoch seconds, as app_queue wrote it
    callid: str  # the caller channel's uniqueid, or NONE for member events
    queue: str
    agent: str
    event: str
    data: tuple[str, ...]

    def datum(self, index: int) -> str:
        """dataN, counted from 1 as Asterisk's documentation does; empty when absent."""
        return self.data[index - 1] if len(self.data) >= index else ""

    def number(self, index: int) -> int | None:
        """dataN as a number, None when it is none (or too large to be one Asterisk counted)."""
        value = self.datum(index)
        if not value.lstrip("-").isdigit() or len(value) > 11:
            return None
        number = int(value)
        return number if -INT4 <= number <= INT4 else None


@dataclass(frozen=True, slots=True)
class BadLine:
    offset: int
    reason: str
    raw: str = ""  # the line as read (undecodable bytes replaced), for the quarantine


@dataclass(frozen=True, slots=True)
class Parsed:
    rows: list[QueueLogRow]
    bad: list[BadLine]
    consumed: int  # bytes up to the end of the last complete line: the next read starts there


def _day(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d")


def parse_line(line: bytes, offset: int, window: tuple[int, int] = (EARLIEST, LATEST)) -> QueueLogRow | BadLine:
    """One line; its time and its call's start (from the callid) must lie in `window` (epoch
    seconds, from inclusive, to exclusive)."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        return BadLine(offset, f"not UTF-8 at byte {exc.start}", line.decode("utf-8", "replace"))
    fields = text.rstrip("\r").split("|")
    if len(fields) < 5:
        return BadLine(offset, f"{len(fields)} fields, queue_log lines have at least 5", text)
    holding = [index + 1 for index, field in enumerate(fields) if "\x00" in field]
    if holding:
        return BadLine(offset, f"a NUL character in field {holding[0]}", text)
    stamp = fields[0].split(".", 1)[0]  # realtime-style fractions are allowed, seconds kept
    if not stamp.isdigit():
        return BadLine(offset, f"time {fields[0][:20]!r} is not epoch seconds", text)
    earliest, latest = window
    between = f"between {_day(earliest)} and {_day(latest)}"
    if not earliest <= int(stamp[:12]) < latest:
        return BadLine(offset, f"time {fields[0][:20]!r} is not {between}", text)
    begun = call_started(fields[1])
    if begun is not None and not earliest <= begun < latest:
        return BadLine(offset, f"callid {fields[1][:40]!r} names a time not {between}", text)
    if not fields[4]:
        return BadLine(offset, "no event name", text)
    return QueueLogRow(offset, int(stamp), fields[1], fields[2], fields[3], fields[4], tuple(fields[5:]))


def call_started(call_id: str) -> int | None:
    """The epoch second a channel was created, from its uniqueid (`[system-]1732262400.3`): both
    hotline's record and queue_log name the call by it, so both place it in the same partition."""
    stamp, dot, sequence = call_id.rpartition("-")[2].partition(".")
    return int(stamp[:16]) if dot and stamp.isdigit() and sequence.isdigit() else None


def parse_chunk(chunk: bytes, base_offset: int, window: tuple[int, int] = (EARLIEST, LATEST)) -> Parsed:
    """Every complete line of `chunk`, which starts at `base_offset` in its file (times in
    `window`, as parse_line)."""
    rows: list[QueueLogRow] = []
    bad: list[BadLine] = []
    position = 0
    while True:
        end = chunk.find(b"\n", position)
        if end < 0:
            if len(chunk) - position > MAX_LINE_BYTES:
                # No newline in sight and already too long: skip it so the file does not stall.
                bad.append(BadLine(base_offset + position, f"line longer than {MAX_LINE_BYTES} bytes",
                                   chunk[position:position + 200].decode("utf-8", "replace")))
                position = len(chunk)
            break
        line = chunk[position:end]
        if line.strip():
            parsed = parse_line(line, base_offset + position, window) if len(line) <= MAX_LINE_BYTES else BadLine(
                base_offset + position, f"line longer than {MAX_LINE_BYTES} bytes",
                line[:200].decode("utf-8", "replace"))
            if isinstance(parsed, QueueLogRow):
                rows.append(parsed)
            else:
                bad.append(parsed)
        position = end + 1
    return Parsed(rows, bad, position)
