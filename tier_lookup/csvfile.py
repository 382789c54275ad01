"""Read a tier-table CSV into rows and located errors (pure: bytes in, values out).

Nothing here touches Redis: the importer decides what to do with the rows and the errors.
The monthly refresh parses millions of rows, so the common path avoids per-row work that the
rare bad row does not need (the first line of a conflicting duplicate is found only on conflict).
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from tier_lookup.layout import BUCKET_DIGITS
from tier_lookup.tables import (
    MAX_LINE_CHARS,
    HeaderRejected,
    RowContext,
    RowParser,
    RowRejected,
    TableSpec,
    check_header,
    control_characters,
    row_parser,
)

MAX_REPORTED_ERRORS = 1000
_CsvReader = Any  # csv's reader type is private; it has line_num and iterates rows


@dataclass(frozen=True, slots=True)
class RowError:
    line: int
    reason: str

    def located(self, file: str) -> str:
        return f"{file}:{self.line}: {self.reason}"


@dataclass(slots=True)
class ParsedTable:
    """Every valid row, already grouped by storage bucket (number -> encoded value in each),
    plus everything that was wrong.

    Grouping while parsing saves the importer a pass over millions of rows, and small per-bucket
    dicts detect duplicates faster than one huge dict.
    """

    buckets: list[dict[str, str]]
    columns: tuple[str, ...] = ()
    errors: list[RowError] = field(default_factory=list)
    duplicates: int = 0  # identical repeats, stored once
    rejected: int = 0
    header_error: RowError | None = None

    @property
    def row_count(self) -> int:
        return sum(map(len, self.buckets))

    @property
    def rows_read(self) -> int:
        # Every data row ends up stored, counted as an identical duplicate, or rejected.
        return self.row_count + self.duplicates + self.rejected

    def numbers(self) -> Iterator[str]:
        for bucket in self.buckets:
            yield from bucket

    def reject(self, line: int, reason: str) -> None:
        # A wholly wrong file would otherwise produce a million messages; the count stays exact.
        self.rejected += 1
        if len(self.errors) < MAX_REPORTED_ERRORS:
            self.errors.append(RowError(line, reason))


@dataclass(slots=True)
class _Text:
    """The file as text lines, with the lines that are unusable before CSV splitting."""

    lines: list[str]
    bad: dict[int, str]  # 1-based line number -> reason
    ends_with_newline: bool


def _decode(data: bytes, encoding: str) -> _Text:
    """Decode the whole file at once (the fast, usual case); on a bad byte, pin it to its line."""
    plain = encoding.replace("_", "-").lower()
    first_encoding = "utf-8-sig" if plain in ("utf-8", "utf8") else encoding
    bad: dict[int, str] = {}
    try:
        text = data.decode(first_encoding)
        lines = text.splitlines(keepends=True)
        suspect = set(control_characters(text, lines))
    except UnicodeDecodeError:
        lines = []
        for number, raw_line in enumerate(data.splitlines(keepends=True), start=1):
            try:
                lines.append(raw_line.decode(first_encoding if number == 1 else encoding))
            except UnicodeDecodeError as exc:
                bad[number] = (
                    f"not valid {encoding} text (byte 0x{raw_line[exc.start]:02x} at column {exc.start + 1}); "
                    "re-export the file as UTF-8 or pass --encoding"
                )
                lines.append(raw_line.decode(encoding, errors="replace"))
        suspect = set(range(1, len(lines) + 1))
    if max(map(len, lines), default=0) > MAX_LINE_CHARS:
        suspect.update(n for n, line in enumerate(lines, start=1) if len(line) > MAX_LINE_CHARS)
    for number in sorted(suspect):
        line = lines[number - 1]
        if number in bad:
            continue
        if len(line) > MAX_LINE_CHARS:
            bad[number] = f"line longer than {MAX_LINE_CHARS} characters"
        elif control_characters(line, None):
            bad[number] = "control character inside the line (or a quoted value spanning lines)"
    return _Text(lines, bad, data.endswith(b"\n"))


def _utf8_named_otherwise(data: bytes, encoding: str) -> str | None:
    """A file that is UTF-8 with non-ASCII text, imported as another encoding, would decode into
    plausible-looking nonsense (mojibake) in names and greetings: say so instead of storing it."""
    if encoding.replace("_", "-").lower() in ("utf-8", "utf8", "utf-8-sig") or data.isascii():
        return None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None  # not UTF-8: the named encoding may well be right
    sample = next((c for c in text if ord(c) > 127), "")
    line = text[: text.index(sample)].count("\n") + 1 if sample else 1
    return (f"the file is UTF-8 (line {line} has {sample!r}), not {encoding}: importing it as {encoding} would "
            f"store garbled text; leave out --encoding")


def data_lines(data: bytes) -> int:
    """An upper bound on the rows in `data`, cheap enough to size the buckets before parsing."""
    return data.count(b"\n") + 1


def parse_table(
    data: bytes, spec: TableSpec, ctx: RowContext, buckets: int, encoding: str = "utf-8"
) -> ParsedTable:
    """Parse a whole CSV file's bytes into `buckets` groups (see tier_lookup.layout.bucket_of).

    Header problems make the file unusable; row problems are collected with their line numbers
    and the row left out."""
    result = ParsedTable(buckets=[{} for _ in range(buckets)])
    mistaken = _utf8_named_otherwise(data, encoding)
    if mistaken:
        result.header_error = RowError(1, mistaken)
        return result
    text = _decode(data, encoding)
    reader = csv.reader(text.lines, strict=True)
    try:
        header = next(reader, None)
        if header is None:
            result.header_error = RowError(1, "the file is empty (a header row is required)")
            return result
        if 1 in text.bad:
            result.header_error = RowError(1, text.bad[1])
            return result
        try:
            result.columns = check_header(spec, header)
        except HeaderRejected as exc:
            result.header_error = RowError(1, f"header: {exc}")
            return result
        _read_rows(reader, text, row_parser(spec, result.columns, ctx), result)
    except csv.Error as exc:
        result.reject(reader.line_num, f"broken CSV ({exc}); is the file truncated or a quote unbalanced?")
    return result


def _read_rows(reader: _CsvReader, text: _Text, parse: RowParser, result: ParsedTable) -> None:
    groups = result.buckets
    count = len(groups)
    bad = text.bad
    conflicts: list[tuple[int, str]] = []
    line_start = reader.line_num + 1
    for fields in reader:
        line = line_start
        line_start = reader.line_num + 1
        if not fields or fields == [""]:
            continue
        if bad and line in bad:
            result.reject(line, bad[line])
            continue
        try:
            number, value = parse(fields)
        except RowRejected as exc:
            reason = str(exc)
            if not text.ends_with_newline and reader.line_num == len(text.lines):
                reason += " (the last line has no line end: is the file truncated?)"
            result.reject(line, reason)
            continue
        previous = groups[int(number[-BUCKET_DIGITS:]) % count].setdefault(number, value)
        if previous is value:
            continue
        if previous == value:
            result.duplicates += 1
        else:
            conflicts.append((line, number))
    if conflicts:
        first = _first_lines({n for _, n in conflicts}, text, parse)
        for line, number in conflicts:
            result.reject(line, f"number {number} already appears on line {first[number]} with different data")


def _first_lines(numbers: set[str], text: _Text, parse: RowParser) -> dict[str, int]:
    """Where each of `numbers` first appears; a second pass, paid only when conflicts exist."""
    first: dict[str, int] = {}
    reader = csv.reader(text.lines, strict=True)
    next(reader, None)
    line_start = reader.line_num + 1
    for fields in reader:
        line, line_start = line_start, reader.line_num + 1
        try:
            number = parse(fields)[0]
        except RowRejected:
            continue
        if number in numbers and number not in first:
            first[number] = line
    return first
