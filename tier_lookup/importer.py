"""CSV import into a tier table: parse everything first, then apply all or nothing by default.

Policy for bad rows (documented in the README): by default a file with any bad row is refused
whole and nothing changes, because a silently partial monthly refresh is worse than a late one.
With `skip_bad` the valid rows are applied and every rejected row is listed. A replace that would
shrink a table to under half its rows is refused unless `allow_shrink`: a truncated export must
not wipe out the high-value list.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from enum import StrEnum

from tier_lookup.csvfile import ParsedTable, RowError, data_lines, parse_table
from tier_lookup.layout import Generation
from tier_lookup.store import TierStore
from tier_lookup.tables import TABLES, RowContext, stored_columns

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
    data: bytes,
    source: str,
    ctx: RowContext,
    options: ImportOptions,
) -> ImportReport:
    """Parse `data` (a CSV file's bytes) and apply it to `table` as `options` say; never partially
    unless `skip_bad`. The table's lock is held throughout so two imports cannot interleave."""
    started = time.perf_counter()
    spec = TABLES[table]
    if options.mode is Mode.DELETE:
        # A delete file needs only the numbers; other columns are ignored rather than checked.
        spec = replace(spec, required=("number",))
    async with store.table_lock(table):
        buckets = await store.buckets_for(table, options.mode is Mode.REPLACE, data_lines(data))
        parsed = parse_table(data, spec, ctx, buckets, options.encoding)
        report = ImportReport(
            table=table,
            source=source,
            mode=options.mode,
            rows_read=parsed.rows_read,
            rejected=parsed.rejected,
            duplicates=parsed.duplicates,
            errors=list(parsed.errors),
        )
        report.refused = _refusal(parsed, options) or await _guard(store, table, parsed, options)
        if not report.refused:
            await _apply(store, table, parsed, source, options, report)
    report.seconds = time.perf_counter() - started
    return report


def _refusal(parsed: ParsedTable, options: ImportOptions) -> str:
    if parsed.header_error is not None:
        return f"line {parsed.header_error.line}: {parsed.header_error.reason}"
    if parsed.rejected and not options.skip_bad:
        return (f"{parsed.rejected} bad row(s); fix them, or pass --skip-bad to apply the "
                f"{parsed.row_count} good rows")
    if not parsed.row_count and options.mode is Mode.REPLACE:
        return "no valid rows; a replace would empty the table"
    return ""


async def _guard(store: TierStore, table: str, parsed: ParsedTable, options: ImportOptions) -> str:
    live = await store.live_generation(table)
    if options.mode is Mode.UPSERT and live is not None:
        extra = [c for c in stored_columns(parsed.columns) if c not in live.columns]
        if extra:
            return (f"column {extra[0]!r} is not in the live table (columns: {', '.join(live.columns) or 'none'}); "
                    "use a replace import to change columns")
    if options.mode is Mode.REPLACE and not options.allow_shrink:
        live_rows = await store.table_rows(table)
        if live_rows and parsed.row_count < live_rows * SHRINK_LIMIT:
            return (f"the new file has {parsed.row_count} rows, under half of the {live_rows} live rows; "
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
