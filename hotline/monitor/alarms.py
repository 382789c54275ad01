"""Alarms: the conditions are pure functions of what is known now; `AlarmBook` remembers since
when each has held, so a level must stay under target for the configured minutes before it
alarms, and each episode is logged once when it starts and once when it ends."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import structlog

from agi.records import OUTBOX_MAX
from hotline_core.policy import Policy

log = structlog.get_logger("alarms")


@dataclass(frozen=True, slots=True)
class Alarm:
    kind: str  # one of alarm_kinds()
    subject: str  # the level, the table, or "" (bounded: usable as a metric label)
    message: str


@dataclass(frozen=True, slots=True)
class Conditions:
    """What the alarm rules look at, gathered by the monitor."""

    service_level_today: Mapping[str, float | None]  # level -> answered in time / offered, today
    table_imported_at: Mapping[str, datetime | None]  # table -> last import (None: never imported)
    ami_up: bool | None  # None: no AMI bridge configured here
    sms_dead: int
    entries: int  # call entries so far (a counter)
    degraded: int  # degraded lookups so far (a counter)
    sms_added: int = 0  # SMS jobs ever queued, by every instance (a counter)
    outbox: int = 0  # call facts waiting in Redis for the records database
    components_down: tuple[tuple[str, str], ...] = ()  # (background component, what is wrong)
    desk_shares: tuple[tuple[str, int, float], ...] = ()  # (virtual desk, agents seated, share qualified)


def _pct(value: float) -> str:
    return f"{value:.1%}"


def candidates(conditions: Conditions, policy: Policy, now: datetime) -> list[Alarm]:
    """Every condition true right now (pure); the book decides which have lasted long enough."""
    out = []
    for level in policy.levels:
        sl = conditions.service_level_today.get(level.name)
        if sl is not None and sl < level.answer_rate_target:
            out.append(Alarm("level_below_target", level.name, f"{level.label} ({level.name}): service level today "
                             f"{_pct(sl)} under its target {_pct(level.answer_rate_target)}"))
    for table, hours in policy.alarms.feed_max_age_hours.items():
        imported = conditions.table_imported_at.get(table)
        if imported is None:
            out.append(Alarm("feed_late", table, f"tier table {table} has never been imported"))
        elif now - imported > timedelta(hours=hours):
            age = (now - imported).total_seconds() / 3600
            out.append(Alarm("feed_late", table, f"tier table {table} last imported {age:.0f} h ago "
                             f"(expected within {hours:g} h)"))
    rule = policy.desk_rule
    for desk, seated, share in conditions.desk_shares:
        spec = policy.desks.get(desk)
        if spec is None or not spec.open_in(now.astimezone(policy.zone).month):
            continue
        if not seated:
            out.append(Alarm("desk_rule", desk, f"{spec.label} ({desk}): no agent seated (no qualified agent "
                             "is left for it; its callers go straight to the next group)"))
        elif share < rule.min_qualified_share:
            out.append(Alarm("desk_rule", desk, f"{spec.label} ({desk}): {_pct(share)} of its agents qualified, "
                             f"under the desk rule's {_pct(rule.min_qualified_share)} (hotline agents kpis; "
                             "agents desks --measured)"))
    if conditions.ami_up is False:
        out.append(Alarm("ami_down", "", "the AMI link to Asterisk is down: queues are not staffed from the desks"))
    for component, description in conditions.components_down:
        out.append(Alarm("component_down", component, description))
    if conditions.outbox > policy.alarms.outbox_backlog_max:
        out.append(Alarm("records_backlog", "", f"{conditions.outbox} call facts wait in Redis for the records "
                         f"database (the outbox keeps at most {OUTBOX_MAX:,}; past that the oldest are dropped)"))
    if conditions.sms_dead:
        out.append(Alarm("sms_dead_letters", "", f"{conditions.sms_dead} SMS in the dead letters (hotline sms dead)"))
    return out


@dataclass
class Growth:
    """How much counters grew over the last `minutes` (from the oldest sample still inside it)."""
    minutes: int
    samples: deque[tuple[datetime, tuple[int, ...]]] = field(default_factory=deque)

    def over_window(self, now: datetime, *counters: int) -> tuple[int, ...]:
        self.samples.append((now, counters))
        window = timedelta(minutes=self.minutes)
        while len(self.samples) > 1 and now - self.samples[1][0] >= window:
            self.samples.popleft()
        first = self.samples[0][1]
        return tuple(now_ - then for now_, then in zip(counters, first, strict=True))


@dataclass
class AlarmBook:
    policy: Policy
    since: dict[tuple[str, str], datetime] = field(default_factory=dict)  # condition first seen
    active: dict[tuple[str, str], Alarm] = field(default_factory=dict)
    lookups: Growth = field(init=False)
    sms: Growth = field(init=False)

    def __post_init__(self) -> None:
        self.lookups = Growth(self.policy.alarms.degraded_window_minutes)
        self.sms = Growth(self.policy.alarms.sms_volume_window_minutes)

    def _sms_volume(self, conditions: Conditions, now: datetime) -> Alarm | None:
        """Far more SMS than the hotline sends in its ordinary course: a relay, a loop, a flood."""
        (added,) = self.sms.over_window(now, conditions.sms_added)
        limit, minutes = self.policy.alarms.sms_volume_max, self.policy.alarms.sms_volume_window_minutes
        if added > limit:
            return Alarm("sms_volume", "", f"{added} SMS queued in the last {minutes} min (more than {limit}): "
                         "see hotline sms status and the work orders' replies")
        return None

    def _degraded(self, conditions: Conditions, now: datetime) -> Alarm | None:
        entries, degraded = self.lookups.over_window(now, conditions.entries, conditions.degraded)
        share = degraded / entries if entries else 0.0
        if entries and share > self.policy.alarms.degraded_share:
            return Alarm("degraded_lookups", "", f"{degraded} of {entries} lookups degraded in the last "
                         f"{self.policy.alarms.degraded_window_minutes} min ({_pct(share)})")
        return None

    def update(self, conditions: Conditions, now: datetime) -> list[Alarm]:
        """The alarms active now; logs the ones that begin and end."""
        found = candidates(conditions, self.policy, now)
        found += [alarm for alarm in (self._degraded(conditions, now), self._sms_volume(conditions, now)) if alarm]
        current = {(a.kind, a.subject): a for a in found}
        for key in list(self.since):
            if key not in current:
                del self.since[key]
        hold = timedelta(minutes=self.policy.alarms.below_target_minutes)
        active = {}
        for key, alarm in current.items():
            first = self.since.setdefault(key, now)
            if alarm.kind != "level_below_target" or now - first >= hold:
                active[key] = alarm
        for key, alarm in active.items():
            if key not in self.active:
                log.warning("alarm", kind=alarm.kind, subject=alarm.subject, message=alarm.message)
        for key, alarm in self.active.items():
            if key not in active:
                log.info("alarm cleared", kind=alarm.kind, subject=alarm.subject)
        self.active = active
        return sorted(active.values(), key=lambda a: (a.kind, a.subject))


def alarm_kinds() -> Iterable[str]:
    return ("level_below_target", "feed_late", "ami_down", "sms_dead_letters", "degraded_lookups", "sms_volume",
            "records_backlog", "component_down", "desk_rule")
