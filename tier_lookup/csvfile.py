"""Read a tier-table CSV into rows and located errors (pure over an iterable of byte lines).

Nothing here touches Redis: the importer decides what to do with the rows and the errors.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from tier_lookup.tables import (
    HeaderRejected,
    RowContext,
    RowRejected,
    TableSpec,
    check_header,
    parse_row,
)


MAX_REPORTED_ERRORS = 1000


@dataclass(frozen=True, slots=True)
class RowError:
    line: int
    reason: str

    def located(self, file: str) -> str:
        return f"{file}:{self.line}: {self.reason}"


@dataclass(slots=True)
class ParsedTable:
    """Every valid row grouped by normalised number, plus everything that was wrong."""

    columns: tuple[str, ...] = ()
    rows: dict[str, tuple[str, ...]] = field(default_factory=dict)
    errors: list[RowError] = field(default_factory=list)
    rows_read: int = 0
    duplicates: int = 0  # identical repeats, stored once
    rejected: int = 0
    header_error: RowError | None = None

    def reject(self, line: int, reason: str) -> None:
        # A wholly wrong file would otherwise produce a million messages; the count stays exact.
        self.rejected += 1
        if len(self.errors) < MAX_REPORTED_ERRORS:
            self.errors.append(RowError(line, reason))


class _Lines:
    """Decode byte lines one by one so a bad byte is pinned to its line, not the whole file."""

    def __init__(self, raw: Iterable[bytes], encoding: str):
        self._raw = raw
        self._encoding = encoding
        self.bad: dict[int, str] = {}
        self.number = 0
        self.last_ended = True

    def __iter__(self) -> Iterator[str]:
        for raw_line in self._raw:
            self.number += 1
            encoding = "utf-8-sig" if self.number == 1 and self._encoding == "utf-8" else self._encoding
            self.last_ended = raw_line.endswith(b"\n")
            try:
                yield raw_line.decode(encoding)
            except UnicodeDecodeError as exc:
                self.bad[self.number] = (
                    f"not valid {self._encoding} text (byte 0x{raw_line[exc.start]:02x} at column {exc.start + 1}); "
                    "re-export the file as UTF-8 or pass --encoding"
                )
                yield raw_line.decode(encoding, errors="replace")


def parse_table(
    raw_lines: Iterable[bytes], spec: TableSpec, ctx: RowContext, encoding: str = "utf-8"
) -> ParsedTable:
    result = ParsedTable()
    lines = _Lines(raw_lines, encoding)
    reader = csv.reader(lines, strict=True)
    first_line: dict[str, int] = {}
    try:
        header = next(reader, None)
        if header is None:
            result.header_error = RowError(1, "the file is empty (a header row is required)")
            return result
        if 1 in lines.bad:
            result.header_error = RowError(1, lines.bad[1])
            return result
        try:
            result.columns = check_header(spec, header)
        except HeaderRejected as exc:
            result.header_error = RowError(1, f"header: {exc}")
            return result
        line_start = reader.line_num + 1
        for fields in reader:
            line = line_start
            line_start = reader.line_num + 1
            if not fields or fields == [""]:
                continue
            result.rows_read += 1
            if line in lines.bad:
                result.reject(line, lines.bad[line])
                continue
            try:
                number, values = parse_row(spec, result.columns, fields, ctx)
            except RowRejected as exc:
                reason = str(exc)
                if not lines.last_ended and reader.line_num == lines.number:
                    reason += " (the last line has no line end: is the file truncated?)"
                result.reject(line, reason)
                continue
            previous = result.rows.get(number)
            if previous is None:
                result.rows[number] = values
                first_line[number] = line
            elif previous == values:
                result.duplicates += 1
            else:
                result.reject(line, f"number {number} already appears on line {first_line[number]} "
                                    "with different data")
    except csv.Error as exc:
        result.rows_read += 1
        result.reject(reader.line_num, f"broken CSV ({exc}); is the file truncated or a quote unbalanced?")
    return result
