"""Progress bars only on a terminal, one per phase."""

from __future__ import annotations

import io

from hotline.cli.progress import Bars


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_bars_are_drawn_on_a_terminal_one_per_phase() -> None:
    out = Terminal()
    with Bars(out, in_bytes=frozenset({"reading"})) as bars:
        for done in (1000, 2000, 4000):
            bars("reading", done, 4000)
        bars("writing", 1, 2)
        bars("writing", 2, 2)
    drawn = out.getvalue()  # tqdm draws at most every 0.1 s: the first state of each bar at least
    assert "reading:" in drawn
    assert "/4.00k [" in drawn  # bytes, scaled
    assert "writing:" in drawn
    assert "/2 [" in drawn  # items


def test_nothing_is_drawn_when_the_output_is_not_a_terminal() -> None:
    out = io.StringIO()
    with Bars(out) as bars:
        bars("replications", 5, 10)
        bars("replications", 10, 10)
    assert out.getvalue() == ""
