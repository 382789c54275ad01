"""Tables out of the hotline: a terminal table, CSV that Excel opens with Chinese intact, XLSX,
JSON. A cell of text that starts with =, +, - or @ is kept as text everywhere, so a caller's
data or a service name can never become a spreadsheet formula."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
FORMATS = ("table", "csv", "xlsx", "json")


def safe_text(value: str) -> str:
    """CSV: a leading apostrophe is how spreadsheets mark 'this is text'."""
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    return value


def csv_lines(columns: Sequence[tuple[str, str]], rows: Sequence[dict[str, Any]], header: bool = False) -> bytes:
    """CSV lines for `rows` (and the header first if asked), formulas kept as text: an export
    streamed a batch at a time is these, after `CSV_START`."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    if header:
        writer.writerow([h for _, h in columns])
    for row in rows:
        cells = [_cell(row.get(key)) for key, _ in columns]
        writer.writerow([safe_text(c) if isinstance(c, str) else c for c in cells])
    return out.getvalue().encode("utf-8")


CSV_START = "\ufeff".encode()  # the BOM tells Excel the file is UTF-8


def to_csv(columns: Sequence[tuple[str, str]], rows: Sequence[dict[str, Any]]) -> bytes:
    return CSV_START + csv_lines(columns, rows, header=True)


# The control characters an XLSX cell refuses: below 0x20, except tab, newline and carriage return.
_NOT_IN_XLSX = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f]")


def xlsx_text(value: Any) -> Any:
    """What an XLSX cell can hold: the control characters the format refuses (all below 0x20 but
    tab, newline and carriage return) become U+FFFD, so one odd order never fails a whole export
    (openpyxl raises IllegalCharacterError on them)."""
    return _NOT_IN_XLSX.sub("\ufffd", value) if isinstance(value, str) else value


class XlsxSheet:
    """An XLSX export built a batch of rows at a time in openpyxl's write-only mode (rows go to a
    temporary file, not kept as cell objects), so its memory does not grow with the rows. Made to
    be read by a person: a bold, frozen header with filters, columns as wide as their contents
    (from the first batch), numbers as numbers and the `dates` columns as dates."""

    def __init__(self, columns: Sequence[tuple[str, str]], title: str, dates: frozenset[str] = frozenset()):
        # openpyxl is imported here, not with the module: it is a fifth of every command's start
        # (measured with -X importtime), and most commands never write a spreadsheet.
        from openpyxl import Workbook

        self._columns = columns
        self._dates = dates
        self._book = Workbook(write_only=True)
        self._sheet = self._book.create_sheet(title[:31])
        self._rows = 0
        self._started = False

    def _start(self, first: Sequence[dict[str, Any]]) -> None:
        # A write-only sheet takes its column widths and panes before its first row.
        from openpyxl.cell import WriteOnlyCell
        from openpyxl.styles import Font
        from openpyxl.utils import get_column_letter

        for index, (key, header) in enumerate(self._columns, 1):
            texts = [header, *(str(_cell(row.get(key))) for row in first[:200])]
            widest = max(_width(line) for text in texts for line in (text.splitlines() or [""]))
            self._sheet.column_dimensions[get_column_letter(index)].width = min(60, max(8, widest + 2))
        self._sheet.freeze_panes = "A2"
        bold = Font(bold=True)
        header_cells = []
        for _, header in self._columns:
            cell = WriteOnlyCell(self._sheet, value=xlsx_text(header))
            cell.font = bold
            header_cells.append(cell)
        self._sheet.append(header_cells)
        self._started = True

    def add(self, rows: Sequence[dict[str, Any]]) -> None:
        from openpyxl.cell import WriteOnlyCell

        if not self._started:
            self._start(rows)
        for row in rows:
            cells = []
            for key, _ in self._columns:
                value = xlsx_text(_cell(row.get(key)))
                if key in self._dates and isinstance(value, str) and value:
                    value = _moment(value)
                cell = WriteOnlyCell(self._sheet, value=value)
                if isinstance(value, str):
                    cell.data_type = "s"  # openpyxl would store "=..." as a formula otherwise
                elif isinstance(value, datetime):
                    cell.number_format = "yyyy-mm-dd hh:mm"
                elif isinstance(value, date):
                    cell.number_format = "yyyy-mm-dd"
                cells.append(cell)
            self._sheet.append(cells)
        self._rows += len(rows)

    def save(self) -> bytes:
        from openpyxl.utils import get_column_letter

        if not self._started:
            self._start([])
        self._sheet.auto_filter.ref = f"A1:{get_column_letter(len(self._columns))}{self._rows + 1}"
        out = io.BytesIO()
        self._book.save(out)
        return out.getvalue()


def _moment(text: str) -> Any:
    """An ISO date or date-time as Excel holds it: the wall time as written (the operator's zone,
    in which the exports write them), without an offset Excel has no place for; anything else as
    it came."""
    try:
        if len(text) == 10:
            return date.fromisoformat(text)
        return datetime.fromisoformat(text).replace(tzinfo=None)
    except ValueError:
        return text


def to_xlsx(columns: Sequence[tuple[str, str]], rows: Sequence[dict[str, Any]], title: str,
            dates: frozenset[str] = frozenset()) -> bytes:
    sheet = XlsxSheet(columns, title, dates)
    sheet.add(rows)
    return sheet.save()


def to_json(rows: Sequence[dict[str, Any]]) -> bytes:
    return (json.dumps(list(rows), ensure_ascii=False, indent=1) + "\n").encode()


def to_table(columns: Sequence[tuple[str, str]], rows: Sequence[dict[str, Any]],
             percent: frozenset[str] = frozenset()) -> str:
    def show(key: str, value: Any) -> str:
        if value is None:
            return "-"
        if isinstance(value, bool):
            return "YES" if value else ""  # the columns that are flags (below target, overdue) stand out
        if key in percent:
            return f"{value:.1%}"
        if isinstance(value, float):
            return f"{value:.1f}"
        return str(value)

    texts = [[show(key, row.get(key)) for key, _ in columns] for row in rows]
    headers = [header for _, header in columns]
    widths = [max([_width(h), *(_width(t[i]) for t in texts)]) for i, h in enumerate(headers)]
    lines = ["  ".join(_pad(h, w) for h, w in zip(headers, widths, strict=True))]
    lines += ["  ".join(_pad(c, w) for c, w in zip(t, widths, strict=True)) for t in texts]
    return "\n".join(line.rstrip() for line in lines) + "\n"


def _width(text: str) -> int:
    # CJK characters take two columns on a terminal.
    return sum(2 if ord(ch) > 0x2E80 else 1 for ch in text)


def _pad(text: str, width: int) -> str:
    return text + " " * (width - _width(text))


def render(fmt: str, columns: Sequence[tuple[str, str]], rows: Sequence[dict[str, Any]], title: str,
           percent: frozenset[str] = frozenset(), dates: frozenset[str] = frozenset()) -> bytes:
    """`percent`: the columns a person reads as percentages (the table shows 0.95 as 95.0%);
    `dates`: the ISO date or date-time columns (XLSX holds them as dates)."""
    if fmt == "csv":
        return to_csv(columns, rows)
    if fmt == "xlsx":
        return to_xlsx(columns, rows, title, dates)
    if fmt == "json":
        return to_json(rows)
    return to_table(columns, rows, percent).encode()
