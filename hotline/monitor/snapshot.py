"""The hotline at one moment, per level and per desk (pure): what the supervisors' board, the
terminal's `hotline status` and the scrape-time gauges all show."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from ami_bridge.model import QueueModel
from ami_bridge.seating import DeskOf
from hotline.monitor.alarms import Alarm
from hotline_core.policy import Policy

_BUSY = {"in use", "busy", "ringing", "ringing in use", "on hold"}
AGENT_STATES = ("free", "busy", "paused", "away")


@dataclass(frozen=True, slots=True)
class LevelLine:
    level: str
    label: str
    queue: str
    waiting: int
    longest_wait_s: int
    offered_today: int | None  # None: no records database to count from
    answered_today: int | None
    abandoned_today: int | None
    released_today: int | None
    service_level_today: float | None
    target: float  # the level's answer-rate target
    below: bool
    surveyed_today: int | None = None  # post-call surveys answered today
    satisfaction_today: float | None = None  # satisfied / surveyed


@dataclass(frozen=True, slots=True)
class DeskLine:
    desk: str
    label: str
    free: int
    busy: int
    paused: int
    away: int
    seasonal: bool
    open_now: bool


@dataclass(frozen=True, slots=True)
class Snapshot:
    at: str
    levels: tuple[LevelLine, ...]
    desks: tuple[DeskLine, ...]
    alarms: tuple[Alarm, ...]
    ami_up: bool | None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def agent_state(status: str, paused: bool) -> str:
    if paused:
        return "paused"
    if status == "free":
        return "free"
    return "busy" if status in _BUSY else "away"


def build_snapshot(policy: Policy, model: QueueModel, desk_of: DeskOf, today: Mapping[str, Mapping[str, Any]] | None,
                   alarms: Sequence[Alarm], ami_up: bool | None, now: datetime) -> Snapshot:
    epoch = now.timestamp()
    levels = []
    for level in policy.levels:
        queue = policy.queue(level.name)
        figures = today.get(level.name, {}) if today is not None else None

        def today_count(key: str, figures: Mapping[str, Any] | None = figures) -> int | None:
            return int(figures.get(key, 0)) if figures is not None else None

        sl = figures.get("service_level") if figures is not None else None
        levels.append(LevelLine(
            level.name, level.label, queue, model.waiting(queue), round(model.longest_wait(queue, epoch)),
            today_count("offered"), today_count("answered"), today_count("abandoned"), today_count("released"),
            sl, level.answer_rate_target, sl is not None and sl < level.answer_rate_target,
            today_count("surveyed"), figures.get("csat") if figures is not None else None))
    everyone = policy.everyone_group
    counts: dict[str, dict[str, int]] = {name: dict.fromkeys(AGENT_STATES, 0) for name in policy.desks}
    # Each agent counted once, at its virtual desk or else in the everyone group, so the desks'
    # counts add up to the agents (a desk agent also takes overflow calls as one of everyone).
    for interface, (status, paused) in model.agents().items():
        desk = desk_of(interface.split("/", 1)[-1]) or everyone
        if desk in counts:
            counts[desk][agent_state(status, paused)] += 1
    month = now.astimezone(policy.zone).month
    desks = tuple(DeskLine(name, spec.label, **counts[name], seasonal=spec.months is not None,
                           open_now=spec.open_in(month)) for name, spec in policy.desks.items())
    return Snapshot(now.astimezone(policy.zone).isoformat(timespec="seconds"), tuple(levels), desks, tuple(alarms),
                    ami_up)


def status_text(snapshot: Snapshot) -> str:
    """The same picture for a terminal (pure)."""
    lines = [f"hotline at {snapshot.at}; AMI link "
             + {True: "up", False: "DOWN", None: "not configured"}[snapshot.ami_up], ""]
    lines.append(f"{'level':<18} {'waiting':>7} {'longest':>8} {'offered':>8} {'answered':>8} {'SL today':>9} "
                 f"{'target':>7} {'CSAT':>6}")
    for lv in snapshot.levels:
        sl = "-" if lv.service_level_today is None else f"{lv.service_level_today:.1%}"
        offered = "-" if lv.offered_today is None else str(lv.offered_today)
        answered = "-" if lv.answered_today is None else str(lv.answered_today)
        csat = "-" if lv.satisfaction_today is None else f"{lv.satisfaction_today:.0%}"
        lines.append(f"{lv.level:<18} {lv.waiting:>7} {lv.longest_wait_s:>7}s {offered:>8} {answered:>8} {sl:>9} "
                     f"{lv.target:>7.0%} {csat:>6}" + ("  BELOW" if lv.below else ""))
    lines += ["", f"{'desk':<14} {'free':>5} {'busy':>5} {'paused':>6} {'away':>5}  season"]
    for desk in snapshot.desks:
        season = ("open" if desk.open_now else "closed") if desk.seasonal else "permanent"
        lines.append(f"{desk.desk:<14} {desk.free:>5} {desk.busy:>5} {desk.paused:>6} {desk.away:>5}  {season}")
    lines += ["", "alarms:" if snapshot.alarms else "alarms: none"]
    lines += [f"  {alarm.kind}: {alarm.message}" for alarm in snapshot.alarms]
    return "\n".join(lines)
