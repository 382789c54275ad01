"""Read a tier-table CSV into rows and located errors (pure: bytes in, values out).

Nothing here touches Redis: the importer decides what to do with the rows and the errors.
The monthly refresh parses millions of rows, so the common path avoids per-row work that the
rare bad row does not need (the first line of a conflicting duplicate is found only on conflict).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

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
# A large file is read and parsed this much at a time (see `blocks`).
BLOCK_BYTES = 2 << 20
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


def _decode(data: bytes, encoding: str, first: bool = True) -> _Text:
    """Decode a block of whole lines at once (the fast, usual case); on a bad byte, pin it to its
    line. Only the file's first block may start with a byte-order mark."""
    plain = encoding.replace("_", "-").lower()
    first_encoding = "utf-8-sig" if plain in ("utf-8", "utf8") and first else encoding
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


def _utf8_named_otherwise(data: bytes, encoding: str, lines_before: int = 0) -> str | None:
    """A file that is UTF-8 with non-ASCII text, imported as another encoding, would decode into
    plausible-looking nonsense (mojibake) in names and greetings: say so instead of storing it.
    `data` is the first block of the file with non-ASCII bytes, after `lines_before` lines."""
    if encoding.replace("_", "-").lower() in ("utf-8", "utf8", "utf-8-sig") or data.isascii():
        return None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None  # not UTF-8: the named encoding may well be right
    sample = next((c for c in text if ord(c) > 127), "")
    line = lines_before + (text[: text.index(sample)].count("\n") + 1 if sample else 1)
    return (f"the file is UTF-8 (line {line} has {sample!r}), not {encoding}: importing it as {encoding} would "
            f"store garbled text; leave out --encoding")


def data_lines(data: bytes) -> int:
    """An upper bound on the rows in `data`, cheap enough to size the buckets before parsing."""
    return data.count(b"\n") + 1


def blocks(stream: BinaryIO, size: int = BLOCK_BYTES) -> Iterator[bytes]:
    """A file in pieces of about `size` bytes, each ending at a line end (the last may not), so
    that a large file is parsed a piece at a time: no piece splits a line or a character."""
    rest = b""
    while chunk := stream.read(size):
        data = rest + chunk
        cut = data.rfind(b"\n") + 1
        if not cut:
            rest = data  # one very long line: it is rejected whole once it ends
            continue
        yield data[:cut]
        rest = data[cut:]
    if rest:
        yield rest


# A row read from the file: its line, its normalised number and its encoded value.
Row = tuple[int, str, str]


class TableReader:
    """Reads a tier-table CSV block by block (see `blocks`): the header from the first, then
    each block's valid rows with their lines. Counts and located errors collect in `result`
    (its buckets stay empty: where rows go is the caller's business).

    Header problems make the file unusable; row problems are collected with their line numbers
    and the row left out. A broken quote ends the reading there, as it would end csv's."""

    def __init__(self, spec: TableSpec, ctx: RowContext, encoding: str = "utf-8"):
        self.result = ParsedTable(buckets=[])
        self._spec = spec
        self._ctx = ctx
        self._encoding = encoding
        self._parse: RowParser | None = None
        self._lines = 0  # lines of the blocks read so far
        self._ascii_so_far = True
        self.done = False  # header refused or CSV broken: nothing more is read

    def feed(self, data: bytes, last: bool) -> list[Row]:
        """The valid rows of the next block (`last`: the file's final block)."""
        if self.done:
            return []
        result = self.result
        first = self._lines == 0
        if self._ascii_so_far and not data.isascii():
            self._ascii_so_far = False
            mistaken = _utf8_named_otherwise(data, self._encoding, self._lines)
            if mistaken:
                result.header_error = RowError(1, mistaken)
                self.done = True
                return []
        text = _decode(data, self._encoding, first)
        before, self._lines = self._lines, self._lines + len(text.lines)
        reader = csv.reader(text.lines, strict=True)
        try:
            if first and not self._header(reader, text):
                self.done = True
                return []
            assert self._parse is not None
            return _read_rows(reader, text, self._parse, result, before, last)
        except csv.Error as exc:
            result.reject(before + reader.line_num, f"broken CSV ({exc}); is the file truncated or a quote "
                                                    "unbalanced?")
            self.done = True
            return []

    def _header(self, reader: _CsvReader, text: _Text) -> bool:
        result = self.result
        header = next(reader, None)
        if header is None:
            result.header_error = RowError(1, "the file is empty (a header row is required)")
            return False
        if 1 in text.bad:
            result.header_error = RowError(1, text.bad[1])
            return False
        try:
            result.columns = check_header(self._spec, header)
        except HeaderRejected as exc:
            result.header_error = RowError(1, f"header: {exc}")
            return False
        self._parse = row_parser(self._spec, result.columns, self._ctx)
        return True

    def finish(self) -> None:
        """After the last block: an empty input has no header."""
        if not self._lines and self.result.header_error is None:
            self.result.header_error = RowError(1, "the file is empty (a header row is required)")


def read_file(reader: TableReader, stream: BinaryIO, size: int = BLOCK_BYTES) -> Iterator[list[Row]]:
    """Feed `stream` to `reader` block by block; each block's valid rows as they are read."""
    pending: bytes | None = None
    for block in blocks(stream, size):
        if pending is not None:
            yield reader.feed(pending, last=False)
        pending = block
    if pending is not None:
        yield reader.feed(pending, last=True)
    reader.finish()


def parse_table(
    data: bytes, spec: TableSpec, ctx: RowContext, buckets: int, encoding: str = "utf-8"
) -> ParsedTable:
    """Parse a whole CSV file's bytes into `buckets` groups (see tier_lookup.layout.bucket_of),
    for imports that apply a file as a whole (upserts, deletes)."""
    reader = TableReader(spec, ctx, encoding)
    grouped: dict[int, list[str]] = {}
    for rows in read_file(reader, io.BytesIO(data)):
        add_pairs(grouped, rows, buckets)
    result = reader.result
    result.buckets = [{} for _ in range(buckets)]
    clashing: set[str] = set()
    for bucket, pairs in grouped.items():
        kept, same, numbers = first_kept(pairs)
        result.buckets[bucket] = dict(zip(kept[::2], kept[1::2], strict=True))
        result.duplicates += same
        clashing |= numbers
    if clashing:
        for line, number, first_line in locate_conflicts(clashing, io.BytesIO(data), spec, ctx, encoding):
            result.reject(line, conflict_reason(number, first_line))
    return result


def add_pairs(grouped: dict[int, list[str]], rows: list[Row], buckets: int) -> None:
    """Append rows, in file order, to their bucket's flat (number, value, ...) list."""
    for _line, number, value in rows:
        bucket = int(number[-BUCKET_DIGITS:]) % buckets  # bucket_of, inline: every row of the file
        pairs = grouped.get(bucket)
        if pairs is None:
            pairs = grouped[bucket] = []
        pairs.append(number)
        pairs.append(value)


def first_kept(pairs: list[str]) -> tuple[list[str], int, set[str]]:
    """One bucket's rows as flat (number, value, ...) pairs in file order, with the first row of
    each number kept: (the pairs kept, identical repeats, numbers repeated with other data)."""
    if len(dict(zip(pairs[::2], pairs[1::2], strict=True))) * 2 == len(pairs):
        return pairs, 0, set()  # no number twice: the usual case, checked in C
    first: dict[str, str] = {}
    same = 0
    clashing: set[str] = set()
    for i in range(0, len(pairs), 2):
        number, value = pairs[i], pairs[i + 1]
        kept = first.get(number)
        if kept is None:
            first[number] = value
        elif kept == value:
            same += 1
        else:
            clashing.add(number)
    return [item for pair in first.items() for item in pair], same, clashing


def locate_conflicts(numbers: set[str], stream: BinaryIO, spec: TableSpec, ctx: RowContext,
                     encoding: str = "utf-8") -> list[tuple[int, str, int]]:
    """(line, number, line of its first row) for each row repeating one of `numbers` with other
    data than its first row, in file order: a second reading, paid only when that happened."""
    first: dict[str, tuple[int, str]] = {}
    found: list[tuple[int, str, int]] = []
    for rows in read_file(TableReader(spec, ctx, encoding), stream):
        for line, number, value in rows:
            if number not in numbers:
                continue
            if number not in first:
                first[number] = (line, value)
            elif first[number][1] != value:
                found.append((line, number, first[number][0]))
    return found


def conflict_reason(number: str, first_line: int) -> str:
    return f"number {number} already appears on line {first_line} with different data"


def _read_rows(reader: _CsvReader, text: _Text, parse: RowParser, result: ParsedTable, before: int,
               last: bool) -> list[Row]:
    """The valid rows of one block whose first line is line `before + 1` of the file."""
    rows: list[Row] = []
    bad = text.bad
    line_start = reader.line_num + 1
    for fields in reader:
        local = line_start
        line_start = reader.line_num + 1
        if not fields or fields == [""]:
            continue
        if bad and local in bad:
            result.reject(before + local, bad[local])
            continue
        try:
            number, value = parse(fields)
        except RowRejected as exc:
            reason = str(exc)
            if last and not text.ends_with_newline and reader.line_num == len(text.lines):
                reason += " (the last line has no line end: is the file truncated?)"
            result.reject(before + local, reason)
            continue
        rows.append((before + local, number, value))
    return rows
