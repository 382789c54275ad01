"""What-if pictures with matplotlib (no display: the Agg backend), PNG or SVG by the file name:
each level's service level with its interval against the target, side by side for a
comparison; and the staffing curve of `hotline whatif staff`."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # before pyplot: files only, never a window

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from hotline.whatif.summary import Outcome

FORMATS = (".png", ".svg")


def check_plot_path(path: Path) -> None:
    """Before a run that may take minutes: a picture that could not be written is said now."""
    if path.suffix.lower() not in FORMATS:
        raise ValueError(f"{path}: a plot is written as .png or .svg")
    folder = path.parent
    if not folder.is_dir():
        raise ValueError(f"{path}: the directory {folder} does not exist")
    if path.is_dir():
        raise ValueError(f"{path} is a directory")
    if not os.access(folder, os.W_OK):
        raise ValueError(f"{path}: the directory {folder} is not writable")


def service_levels(outcomes: Sequence[tuple[str, Outcome]], path: Path, title: str) -> None:
    """Bars of service level per level (one colour per scenario), 95% intervals, target ticks."""
    levels = [level.level for level in outcomes[0][1].levels]
    width = 0.8 / len(outcomes)
    figure, axes = plt.subplots(figsize=(max(6.0, 1.1 * len(levels) + 2), 4.5))
    for index, (name, outcome) in enumerate(outcomes):
        xs = [i + (index - (len(outcomes) - 1) / 2) * width for i in range(len(levels))]
        estimates = [outcome.level(level).service_level for level in levels]
        means = [e.mean for e in estimates]
        errors = [[max(0.0, e.mean - e.low) for e in estimates], [max(0.0, e.high - e.mean) for e in estimates]]
        axes.bar(xs, means, width, yerr=errors, capsize=3, label=name)
    for i, level in enumerate(levels):
        target = outcomes[0][1].level(level).target
        axes.hlines(target, i - 0.45, i + 0.45, colors="black", linestyles="dashed", linewidth=1)
    axes.set_xticks(range(len(levels)), levels, rotation=30, ha="right")
    axes.set_ylim(0, 1.05)
    axes.set_ylabel("service level")
    axes.set_title(title + " (dashed: target)", fontsize="medium")
    axes.legend(loc="lower left", fontsize="small")
    _save(figure, path)


def staffing_curve(curve: Sequence[tuple[int, Outcome]], path: Path, title: str, answer: int | None) -> None:
    """Each level's service level against the number of agents, with its target."""
    figure, axes = plt.subplots(figsize=(8, 4.8))
    levels = [level.level for level in curve[0][1].levels if level.offered.mean > 0]
    agents = [n for n, _ in curve]
    for level in levels:
        line = axes.plot(agents, [outcome.level(level).service_level.mean for _, outcome in curve], marker="o",
                         markersize=3, label=level)
        axes.axhline(curve[0][1].level(level).target, color=line[0].get_color(), linestyle=":", linewidth=0.8)
    if answer is not None:
        axes.axvline(answer, color="black", linewidth=1)
        axes.annotate(f"{answer} agents", (answer, 0.02), xytext=(4, 0), textcoords="offset points")
    axes.set_xlabel("agents")
    axes.set_ylabel("service level")
    axes.set_ylim(0, 1.05)
    axes.set_title(title + "  (dotted: each level's target)")
    axes.legend(fontsize="small", loc="lower right")
    _save(figure, path)


def _save(figure: Figure, path: Path) -> None:
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
