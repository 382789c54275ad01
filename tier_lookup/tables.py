"""The tier tables: what each one holds and how one CSV row becomes a stored row (pure, no I/O)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from hotline_core.numbers import DEFAULT_PLAN, NumberPlan, normalize_number
from hotline_core.policy import Policy

# Values are joined with this separator in Redis, so it may not appear inside one.
FIELD_SEPARATOR = "\x1f"
_COLUMN_NAME = re.compile(r"[a-z_][a-z0-9_]{0,31}")
_CONTROL = re.compile(r"[\x00-\x09\x0b\x0c\x0e-\x1f\x7f]")
MAX_LINE_CHARS = 1024


@dataclass(frozen=True, slots=True)
class TableSpec:
    name: str
    required: tuple[str, ...]
    description: str


TABLES: Mapping[str, TableSpec] = {
    spec.name: spec
    for spec in (
        TableSpec("highend", ("number",), "high-value customers (Q4 ARPU at or above the threshold)"),
        TableSpec("newsub", ("number", "activated_at"), "new subscribers with their activation time"),
        TableSpec("campus", ("number",), "students on campus plans"),
        TableSpec("rural", ("number", "name"), "rural service-station liaisons with their name"),
        TableSpec("brand", ("number", "brand"), "every subscriber's brand"),
        TableSpec("redlist", ("number",), "important numbers"),
        TableSpec("blacklist", ("number",), "abusive or fraudulent numbers"),
    )
}


class RowRejected(ValueError):
    """A data row that cannot be stored; the message says why in an operator's words."""


class HeaderRejected(ValueError):
    """The header row makes the whole file unusable."""


@dataclass(frozen=True, slots=True)
class RowContext:
    """What row parsing needs from the policy: the number plan, brands and the local time zone."""

    zone: ZoneInfo
    brands: Mapping[str, str]  # accepted spelling (code or label, lower-cased) -> brand code
    plan: NumberPlan = DEFAULT_PLAN

    @classmethod
    def for_policy(cls, policy: Policy, plan: NumberPlan = DEFAULT_PLAN) -> RowContext:
        """Brands accepted by code or by the policy's label (`全球通`), in the policy's zone."""
        known = {code: spec for code, spec in policy.brands.items() if code != "unknown"}
        brands = {code: code for code in known} | {spec.label.lower(): code for code, spec in known.items()}
        return cls(zone=policy.zone, brands=brands, plan=plan)


def check_header(spec: TableSpec, header: list[str]) -> tuple[str, ...]:
    """Validate a header row; return the normalised column names in file order."""
    columns = tuple(c.strip().lower() for c in header)
    for column in columns:
        if not _COLUMN_NAME.fullmatch(column):
            raise HeaderRejected(f"column name {column!r} is not a plain name (letters, digits, _)")
    dup = sorted({c for c in columns if columns.count(c) > 1})
    if dup:
        raise HeaderRejected(f"column {dup[0]!r} appears twice")
    missing = [c for c in spec.required if c not in columns]
    if missing:
        raise HeaderRejected(f"required column {missing[0]!r} is missing (table {spec.name} needs "
                             f"{', '.join(spec.required)})")
    return columns


def stored_columns(columns: tuple[str, ...]) -> tuple[str, ...]:
    """Columns kept as the row's value: every column but the number, in file order."""
    return tuple(c for c in columns if c != "number")


RowParser = Callable[[list[str]], tuple[str, str]]


def row_parser(spec: TableSpec, columns: tuple[str, ...], ctx: RowContext) -> RowParser:
    """Build the parser for one file's rows: (normalised number, encoded value), or RowRejected.

    The per-column decisions are made once here, not per row: the monthly refresh parses millions.
    Line-level checks (length, control characters) happen in the reader, before this.
    """
    width = len(columns)
    number_at = columns.index("number")
    value_columns = [(i, c) for i, c in enumerate(columns) if c != "number"]
    value_at = [i for i, _ in value_columns]
    plain = all(c not in spec.required and c not in _TYPED for _, c in value_columns)
    single = value_at[0] if len(value_at) == 1 else None
    plan = ctx.plan

    join = FIELD_SEPARATOR.join

    def parse(fields: list[str]) -> tuple[str, str]:
        if len(fields) != width:
            raise RowRejected(f"expected {width} fields, found {len(fields)}")
        number = normalize_number(fields[number_at], plan)
        if number is None:
            raise RowRejected(f"number: {fields[number_at].strip()!r} is not a valid subscriber number")
        if not plain:
            return number, join([_typed_value(spec, c, fields[i].strip(), ctx) for i, c in value_columns])
        if single is not None:
            return number, fields[single].strip()  # the common shape: number plus one attribute
        return number, join([fields[i].strip() for i in value_at])

    return parse


def control_characters(text: str, lines: list[str] | None) -> list[int]:
    """Line numbers (1-based, from `lines`) holding a control character other than a line end.

    With `lines=None`, `text` is one line: [1] if it holds one, else [].
    """
    hits = [m.start() for m in _CONTROL.finditer(text)]
    if not hits:
        return []
    if lines is None:
        return [1]
    found: list[int] = []
    offset = 0
    positions = iter(hits)
    position = next(positions)
    for number, line in enumerate(lines, start=1):
        end = offset + len(line)
        while position < end:
            if number not in found:
                found.append(number)
            position = next(positions, end + len(text))
        offset = end
    return found


_TYPED = frozenset({"activated_at", "brand"})


def _typed_value(spec: TableSpec, column: str, value: str, ctx: RowContext) -> str:
    if column in spec.required and not value:
        raise RowRejected(f"{column}: required value is empty")
    if column == "activated_at" and spec.name == "newsub":
        return str(parse_activation(value, ctx.zone))
    if column == "brand" and spec.name == "brand":
        code = ctx.brands.get(value.lower())
        if code is None:
            known = sorted(set(ctx.brands.values()))
            raise RowRejected(f"brand: {value!r} is not a known brand ({', '.join(known)})")
        return code
    return value


_DATE_FORMATS = ("%Y%m%d%H%M%S", "%Y%m%d", "%Y/%m/%d %H:%M:%S", "%Y/%m/%d")


def parse_activation(value: str, zone: ZoneInfo) -> int:
    """Activation time as epoch seconds; a date means local midnight, naive times are local."""
    parsed: datetime | None = None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        for fmt in _DATE_FORMATS:
            try:
                parsed = datetime.strptime(value, fmt)
                break
            except ValueError:
                continue
    if parsed is None:
        raise RowRejected(f"activated_at: {value!r} is not a date or date-time (e.g. 2026-11-01 or "
                          "2026-11-01T09:30:00+08:00)")
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=zone)
    return int(parsed.timestamp())
