"""The call path's side of the tier tables: one script call per lookup, nothing else."""

from __future__ import annotations

import hashlib
from importlib import resources
from typing import Any, Protocol

from hotline_core.keys import RedisKeys
from hotline_core.redispipe import RedisPipe
from tier_lookup.layout import decode_values

LOOKUP_SCRIPT = resources.files("tier_lookup").joinpath("lookup.lua").read_text(encoding="utf-8")
LOOKUP_SHA = hashlib.sha1(LOOKUP_SCRIPT.encode()).hexdigest()


class RowSource(Protocol):
    async def lookup_rows(self, number: str) -> dict[str, dict[str, str]]: ...


def decode_lookup(flat: list[Any]) -> dict[str, dict[str, str]]:
    """The script's flat reply (table, columns, value, ...) as table -> column -> value."""
    rows: dict[str, dict[str, str]] = {}
    for i in range(0, len(flat) - 2, 3):
        columns = tuple(flat[i + 1].split(",")) if flat[i + 1] else ()
        rows[flat[i]] = decode_values(columns, flat[i + 2])
    return rows


class TierReader:
    """Lookups over the pipelined call-path connection (see hotline_core.redispipe)."""

    def __init__(self, pipe: RedisPipe, prefix: str):
        self._pipe = pipe
        self._keys = RedisKeys(prefix)

    async def lookup_rows(self, number: str) -> dict[str, dict[str, str]]:
        keys = self._keys
        flat = await self._pipe.evalsha(LOOKUP_SCRIPT, LOOKUP_SHA, [keys.tables], [number, keys.bucket_stem])
        return decode_lookup(flat)
