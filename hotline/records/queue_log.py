"""Asterisk's queue_log, parsed (pure: bytes in, rows out; no file or database here).

Each line is `time|callid|queue|agent|event|data1|data2|...`, written by app_queue itself, so
what happened in a queue is counted even while `hotline serve` or its AMI link was down. The
reader hands in what it read from a byte offset; complete lines come back as rows with their
own offsets (the row's identity in the file), a trailing partial line is left for next time,
and a line that is not queue_log is reported with its offset rather than stopping the rest.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_LINE_BYTES = 8192  # app_queue's lines are short; anything longer is not queue_log


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
        value = self.datum(index)
        return int(value) if value.lstrip("-").isdigit() else None


@dataclass(frozen=True, slots=True)
class BadLine:
    offset: int
    reason: str


@dataclass(frozen=True, slots=True)
class Parsed:
    rows: list[QueueLogRow]
    bad: list[BadLine]
    consumed: int  # bytes up to the end of the last complete line: the next read starts there


def parse_line(line: bytes, offset: int) -> QueueLogRow | BadLine:
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        return BadLine(offset, f"not UTF-8 at byte {exc.start}")
    fields = text.rstrip("\r").split("|")
    if len(fields) < 5:
        return BadLine(offset, f"{len(fields)} fields, queue_log lines have at least 5")
    stamp = fields[0].split(".", 1)[0]  # realtime-style fractions are allowed, seconds kept
    if not stamp.isdigit():
        return BadLine(offset, f"time {fields[0][:20]!r} is not epoch seconds")
    if not fields[4]:
        return BadLine(offset, "no event name")
    return QueueLogRow(offset, int(stamp), fields[1], fields[2], fields[3], fields[4], tuple(fields[5:]))


def parse_chunk(chunk: bytes, base_offset: int) -> Parsed:
    """Every complete line of `chunk`, which starts at `base_offset` in its file."""
    rows: list[QueueLogRow] = []
    bad: list[BadLine] = []
    position = 0
    while True:
        end = chunk.find(b"\n", position)
        if end < 0:
            if len(chunk) - position > MAX_LINE_BYTES:
                # No newline in sight and already too long: skip it so the file does not stall.
                bad.append(BadLine(base_offset + position, f"line longer than {MAX_LINE_BYTES} bytes"))
                position = len(chunk)
            break
        line = chunk[position:end]
        if line.strip():
            parsed = parse_line(line, base_offset + position) if len(line) <= MAX_LINE_BYTES else BadLine(
                base_offset + position, f"line longer than {MAX_LINE_BYTES} bytes")
            if isinstance(parsed, QueueLogRow):
                rows.append(parsed)
            else:
                bad.append(parsed)
        position = end + 1
    return Parsed(rows, bad, position)
