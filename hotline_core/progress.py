"""How long work says how far it has got, without knowing who listens: a function told the
phase, what is done and the total (0: unknown). The CLI draws it on a terminal
(hotline.cli.progress); the service and the tests pass nothing."""

from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[str, int, int], None]  # (phase, done so far, total or 0)


def silent(_phase: str, _done: int, _total: int) -> None:
    """Nobody listens."""
