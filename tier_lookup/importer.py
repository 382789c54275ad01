"""CSV import into a tier table: all or nothing by default.

A replace reads the file a block at a time, parks the rows on local disk by bucket range
(tier_lookup.spill), then groups and writes one range at a time into a staged generation that is
published only when the whole file passed; an upsert or delete (a delta) is parsed whole.

Policy for bad rows (documented in docs/operations.md): by default a file with any bad row is refused
whole and nothing changes, because a silently partial monthly refresh is worse than a late one.
With `skip_bad` the valid rows are applied and every rejected row is listed. A replace that would
shrink a table to under half its rows is refused unless `allow_shrink`: a truncated export must
not wipe out the high-value list.
"""

from __future__ import annotations

import asyncio
import io
import tempfile
import time
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import BinaryIO

from hotline_core.progress import Progress, silent
from tier_lookup.csvfile import (
    BLOCK_BYTES,
    ParsedTable,
    RowError,
    TableReader,
    conflict_reason,
    data_lines,
    first_kept,
    locate_conflicts,
    parse_table,
    read_file,
)
from tier_lookup.layout import Generation
from tier_lookup.spill import Spill
from tier_lookup.store import TierStore
from tier_lookup.tables import TABLES, RowContext, TableSpec, stored_columns

SHRINK_LIMIT = 0.5


class Mode(StrEnum):
    REPLACE = "replace"
    UPSERT = "upsert"
    DELETE = "delete"


@dataclass(frozen=True, slots=True)
class ImportOptions:
    mode: Mode = Mode.REPLACE
    skip_bad: bool = False
    allow_shrink: bool = False
    encoding: str = "utf-8"


@dataclass(slots=True)
class ImportReport:
    table: str
    source: str
    mode: Mode
    rows_read: int = 0
    applied: int = 0
    rejected: int = 0
    duplicates: int = 0
    errors: list[RowError] = field(default_factory=list)
    refused: str = ""  # why nothing was applied; empty when the import went through
    generation: int | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.refused

    def summary(self) -> str:
        outcome = f"REFUSED, nothing changed: {self.refused}" if self.refused else "applied"
        rate = f", {self.rows_read / self.seconds:,.0f} rows/s" if self.seconds > 0 and self.rows_read else ""
        return (
            f"{self.table} {self.mode.value} from {self.source}: {outcome}\n"
            f"rows read {self.rows_read}, applied {self.applied}, rejected {self.rejected}, "
            f"identical duplicates {self.duplicates}{rate}"
        )


async def import_table(
    store: TierStore,
    table: str,
    data: bytes | Path,
    source: str,
    ctx: RowContext,
    options: ImportOptions,
    progress: Progress = silent,
) -> ImportReport:
    """Parse `data` (a CSV file, or its bytes) and apply it to `table` as `options` say; never
    partially unless `skip_bad`. The table's lock is held throughout so two imports cannot
    interleave. A replace streams (see `_replace_streaming`: memory stays a few blocks' worth
    whatever the file's size), telling `progress` the bytes read and the parts written; upserts
    and deletes (deltas) are read whole."""
    started = time.perf_counter()
    spec = TABLES[table]
    if options.mode is Mode.DELETE:
        # A delete file needs only the numbers; other columns are ignored rather than checked.
        spec = replace(spec, required=("number",))
    async with store.table_lock(table):
        if options.mode is Mode.REPLACE:
            report = await _replace_streaming(store, table, data, spec, source, ctx, options, progress)
        else:
            whole = data if isinstance(data, bytes) else await asyncio.to_thread(data.read_bytes)
            report = await _import_whole(store, table, whole, spec, source, ctx, options)
    report.seconds = time.perf_counter() - started
    return report


async def _import_whole(store: TierStore, table: str, data: bytes, spec: TableSpec, source: str, ctx: RowContext,
                       options: ImportOptions) -> ImportReport:
    buckets = await store.buckets_for(table, False, data_lines(data))
    parsed = parse_table(data, spec, ctx, buckets, options.encoding)
    report = _report(table, source, options, parsed, parsed.row_count)
    report.refused = _refusal(parsed, parsed.row_count, options) or \
        await _guard(store, table, parsed, parsed.row_count, options)
    if not report.refused:
        await _apply(store, table, parsed, source, options, report)
    return report


async def _replace_streaming(store: TierStore, table: str, data: bytes | Path, spec: TableSpec, source: str,
                             ctx: RowContext, options: ImportOptions, progress: Progress) -> ImportReport:
    """A replace a block at a time: the file's rows are parsed and parked on disk by bucket;
    then, a range of buckets at a time, each number's first row is kept (repeats are found as in
    a whole-file parse) and written into a staged generation, published only if the whole file
    passed. Parsing runs in a thread: the event loop stays free for whatever else it serves."""
    reader = TableReader(spec, ctx, options.encoding)
    parsed = reader.result
    lines = await asyncio.to_thread(_count_lines, data)  # a pass over the file: off the event loop too
    buckets = await store.buckets_for(table, True, lines)
    with tempfile.TemporaryDirectory(prefix="hotline-import-") as tmp, Spill(Path(tmp), buckets, lines) as spill:

        def park() -> None:
            with _open(data) as stream:
                size = len(data) if isinstance(data, bytes) else data.stat().st_size
                for rows in read_file(reader, stream):
                    spill.add(rows)
                    progress("reading", min(stream.tell(), size), size)
            spill.finish()

        await asyncio.to_thread(park)
        # Rows are written only when they could be published: otherwise only counted.
        writing = parsed.header_error is None and not (parsed.rejected and not options.skip_bad)
        generation = await store.stage(table, stored_columns(parsed.columns), buckets) if writing else None
        try:
            stored = 0
            clashing: set[str] = set()
            for part in range(spill.parts):
                kept: list[tuple[int, list[str]]] = []
                for bucket, pairs in spill.load(part).items():
                    first, same, numbers = first_kept(pairs)
                    kept.append((bucket, first))
                    stored += len(first) // 2
                    parsed.duplicates += same
                    clashing |= numbers
                if generation is not None:
                    await store.write(table, generation, kept)
                progress("writing", part + 1, spill.parts)
            if clashing:
                with _open(data) as stream:
                    conflicts = locate_conflicts(clashing, stream, spec, ctx, options.encoding)
                for line, number, first_line in conflicts:
                    parsed.reject(line, conflict_reason(number, first_line))
            report = _report(table, source, options, parsed, stored)
            report.refused = _refusal(parsed, stored, options) or await _guard(store, table, parsed, stored, options)
            if generation is not None and not report.refused:
                await store.publish(table, generation, stored, source)
                report.applied, report.generation = stored, generation.gen
                generation = None
            return report
        finally:
            if generation is not None:  # refused, or interrupted: the live table stays as it was
                await store.discard(table, generation)


def _open(data: bytes | Path) -> BinaryIO:
    return io.BytesIO(data) if isinstance(data, bytes) else data.open("rb")


def _count_lines(data: bytes | Path) -> int:
    """An upper bound on the rows, to size a new generation's buckets: one cheap pass of counting."""
    if isinstance(data, bytes):
        return data_lines(data)
    with data.open("rb") as stream:
        return sum(block.count(b"\n") for block in iter(lambda: stream.read(BLOCK_BYTES), b"")) + 1


def _report(table: str, source: str, options: ImportOptions, parsed: ParsedTable, stored: int) -> ImportReport:
    return ImportReport(table=table, source=source, mode=options.mode,
                        rows_read=stored + parsed.duplicates + parsed.rejected, rejected=parsed.rejected,
                        duplicates=parsed.duplicates, errors=list(parsed.errors))


def _refusal(parsed: ParsedTable, rows: int, options: ImportOptions) -> str:
    if parsed.header_error is not None:
        return f"line {parsed.header_error.line}: {parsed.header_error.reason}"
    if parsed.rejected and not options.skip_bad:
        return (f"{parsed.rejected} bad row(s); fix them, or pass --skip-bad to apply the "
                f"{rows} good rows")
    if not rows and options.mode is Mode.REPLACE:
        return "no valid rows; a replace would empty the table"
    return ""


async def _guard(store: TierStore, table: str, parsed: ParsedTable, rows: int, options: ImportOptions) -> str:
    live = await store.live_generation(table)
    if options.mode is Mode.UPSERT and live is not None:
        extra = [c for c in stored_columns(parsed.columns) if c not in live.columns]
        if extra:
            return (f"column {extra[0]!r} is not in the live table (columns: {', '.join(live.columns) or 'none'}); "
                    "use a replace import to change columns")
    if options.mode is Mode.REPLACE and not options.allow_shrink:
        live_rows = await store.table_rows(table)
        if live_rows and rows < live_rows * SHRINK_LIMIT:
            return (f"the new file has {rows} rows, under half of the {live_rows} live rows; "
                    "pass --allow-shrink if that is intended")
    return ""


async def _apply(
    store: TierStore, table: str, parsed: ParsedTable, source: str, options: ImportOptions, report: ImportReport
) -> None:
    columns = stored_columns(parsed.columns)
    if options.mode is Mode.REPLACE:
        generation: Generation | None = await store.replace(table, columns, parsed.buckets, source)
        report.applied = parsed.row_count
    elif options.mode is Mode.UPSERT:
        generation, _added = await store.upsert(table, columns, parsed.buckets, source)
        report.applied = parsed.row_count
    else:
        report.applied = await store.delete(table, parsed.numbers(), source)
        generation = await store.live_generation(table)
    report.generation = generation.gen if generation else None
