"""Progress of a long command as tqdm bars on standard error, one per phase, drawn only when
standard error is a terminal: piped or logged, a command prints what it always printed."""

from __future__ import annotations

import sys
from types import TracebackType
from typing import Never, TextIO

from tqdm import tqdm


class Bars:
    def __init__(self, stream: TextIO | None = None, in_bytes: frozenset[str] = frozenset()):
        """`in_bytes`: the phases that count bytes (drawn as kB, MB); the others count items."""
        self._stream = stream or sys.stderr
        self._enabled = self._stream.isatty()
        self._in_bytes = in_bytes
        self._phase = ""
        self._bar: tqdm[Never] | None = None  # a bar over no iterable (updated by hand)

    def __call__(self, phase: str, done: int, total: int) -> None:
        """A `hotline_core.progress.Progress`: may be called from a worker thread."""
        if not self._enabled:
            return
        bar = self._bar if phase == self._phase else None
        if bar is None:
            self.close()
            self._phase = phase
            counting_bytes = phase in self._in_bytes
            bar = tqdm(total=total or None, desc=phase, unit="B" if counting_bytes else "it",
                       unit_scale=counting_bytes, file=self._stream, leave=False, dynamic_ncols=True)
            self._bar = bar
        if total and bar.total != total:
            bar.total = total
        bar.update(done - bar.n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> Bars:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()
