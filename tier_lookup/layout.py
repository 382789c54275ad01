"""How tier tables sit in Redis (pure: key names, bucketing, value encoding).

Memory is the constraint: a one-key-per-number layout costs 70+ bytes a row. Instead each table
generation is split into B hash buckets small enough for Redis's compact listpack encoding, with
the full number as the field (stored as an integer) and the row's values joined as the value.
A pointer hash (`RedisKeys.tables`) maps each table to its live generation, so a replace builds a
new generation beside the old one and switches the pointer in one command: a lookup (a Lua
script reading the pointer and the buckets atomically) sees the old table or the new one.

The bucket is the number's last six digits modulo B: the script computes it with exact small
integers, and the low digits of subscriber numbers are evenly spread.
"""

from __future__ import annotations

from dataclasses import dataclass

from hotline_core.keys import RedisKeys
from tier_lookup.tables import FIELD_SEPARATOR

BUCKET_DIGITS = 6
MAX_BUCKETS: int = 10**BUCKET_DIGITS


@dataclass(frozen=True, slots=True)
class Generation:
    """One built version of a table: its id, bucket count and stored column names."""

    gen: int
    buckets: int
    columns: tuple[str, ...]

    def encode(self) -> str:
        return f"{self.gen}|{self.buckets}|{','.join(self.columns)}"

    @classmethod
    def decode(cls, text: str) -> Generation:
        gen, buckets, columns = text.split("|", 2)
        return cls(int(gen), int(buckets), tuple(columns.split(",")) if columns else ())


def bucket_keys(keys: RedisKeys, table: str, generation: Generation) -> list[str]:
    return [keys.table_bucket(table, generation.gen, b) for b in range(generation.buckets)]


def bucket_of(number: str, buckets: int) -> int:
    return int(number[-BUCKET_DIGITS:]) % buckets


def bucket_count(rows: int, max_listpack_entries: int) -> int:
    """Buckets for `rows`, filled to half the listpack limit so random spread never overflows one."""
    per_bucket = max(8, max_listpack_entries // 2)
    return min(MAX_BUCKETS, max(1, -(-rows // per_bucket)))


def decode_values(columns: tuple[str, ...], value: str) -> dict[str, str]:
    if not columns:
        return {}
    parts = value.split(FIELD_SEPARATOR)
    return dict(zip(columns, parts, strict=False))


def remap_value(columns: tuple[str, ...], value: str, target: tuple[str, ...]) -> str:
    """Re-encode a value stored under `columns` for a table stored under `target` (missing: empty)."""
    by_name = decode_values(columns, value)
    return FIELD_SEPARATOR.join(by_name.get(column, "") for column in target)
