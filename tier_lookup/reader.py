"""The call path's side of the tier tables: one script call per lookup, nothing else."""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from typing import Any, Protocol

from hotline_core.keys import RedisKeys
from hotline_core.redispipe import RedisPipe, Script
from tier_lookup.layout import decode_values

LOOKUP_SCRIPT = resources.files("tier_lookup").joinpath("lookup.lua").read_text(encoding="utf-8")


class RowSource(Protocol):
    def lookup_then(self, number: str, handler: Callable[[Any], None]) -> None:
        """Send the lookup script for `number`; `handler` is called with its flat reply (see
        `decode_lookup`) or with the exception it failed with (a lost connection, a timeout, a
        Redis error), perhaps before this returns."""


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
        self._script = Script(LOOKUP_SCRIPT)

    def lookup_then(self, number: str, handler: Callable[[Any], None]) -> None:
        keys = self._keys
        self._pipe.eval_then(self._script, handler, "1", keys.tables, number, keys.bucket_stem)
