"""Rows parked on local disk by bucket while a large file is read, then read back a range of
buckets at a time: a replace import holds a few thousand rows in memory, not the whole file.

A number always falls in one bucket, and each bucket's rows come back in file order: grouping
a range of buckets is the same as grouping the whole file, a range at a time. Rows are kept as
flat (number, value, number, value, ...) lists per bucket: the shape HSET takes, and one that
becomes a dict in C when no number repeats (the usual case).
"""

from __future__ import annotations

import marshal
import struct
from pathlib import Path
from typing import BinaryIO

from tier_lookup.csvfile import Row, add_pairs

# About this many rows per range: small next to a monthly file of millions.
ROWS_PER_PART = 50_000
MAX_PARTS = 256
_LENGTH = struct.Struct("<I")

Pairs = list[str]  # number, value, number, value, ... in file order


class Spill:
    """Use as a context manager inside a fresh temporary directory: the part files are closed
    on exit; the directory's owner removes them."""

    def __init__(self, directory: Path, buckets: int, rows_estimate: int):
        self.buckets = buckets
        self.parts = max(1, min(MAX_PARTS, buckets, -(-rows_estimate // ROWS_PER_PART)))
        self._paths = [directory / f"part-{i:03d}" for i in range(self.parts)]
        self._files: list[BinaryIO] = [path.open("wb") for path in self._paths]

    def __enter__(self) -> Spill:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.finish()

    def add(self, rows: list[Row]) -> None:
        """Park one block's rows, each under its bucket."""
        by_bucket: dict[int, Pairs] = {}
        add_pairs(by_bucket, rows, self.buckets)
        by_part: list[dict[int, Pairs]] = [{} for _ in range(self.parts)]
        for bucket, pairs in by_bucket.items():
            by_part[bucket * self.parts // self.buckets][bucket] = pairs
        for file, part in zip(self._files, by_part, strict=True):
            if part:
                data = marshal.dumps(part)  # C speed both ways; these files never leave this process
                file.write(_LENGTH.pack(len(data)))
                file.write(data)

    def finish(self) -> None:
        """All rows are parked: the part files are closed for reading."""
        for file in self._files:
            file.close()

    def load(self, part: int) -> dict[int, Pairs]:
        """The buckets of range `part`, each with its rows in file order (the part's file is
        removed: each range is read once)."""
        buckets: dict[int, Pairs] = {}
        with self._paths[part].open("rb") as file:
            while header := file.read(_LENGTH.size):
                for bucket, pairs in marshal.loads(file.read(_LENGTH.unpack(header)[0])).items():
                    earlier = buckets.get(bucket)
                    if earlier is None:
                        buckets[bucket] = pairs
                    else:
                        earlier += pairs
        self._paths[part].unlink()
        return buckets
