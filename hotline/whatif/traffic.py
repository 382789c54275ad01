"""The traffic file of `hotline whatif`: who calls, when, for how long, and how patiently.

YAML checked by a schema (published as `traffic.schema.json`, `hotline whatif schema`), errors
as file:line:column like the policy and flows. The smallest file stays this simple:

    hours: 1
    levels:
      ordinary_easyown: {calls_per_hour: 200, handle_time_s: 180}

Traffic is given per access level, or per tier x brand (`tiers:`), which the policy's access
rules map to a level: the same mapping call entry uses. A rate is one number for the whole
period or a list, one per interval (`interval_minutes`, 60 by default), repeated if shorter
than the period. A time is a mean in seconds (exponential), or a distribution.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from hotline_core.policy import Policy, matching_rule
from hotline_core.yamlpos import ConfigFileError, LoadedYaml, Problem, load_yaml, schema_message

MAX_CALLS_PER_HOUR = 1_000_000.0
# One replication simulates at most this many callers (a province's busiest day is about a
# million; the simulator keeps a few hundred bytes per caller waiting), and a traffic file is at
# most this big: past either, the what-if would take minutes and gigabytes before saying anything.
MAX_CALLS_PER_REPLICATION = 5_000_000
MAX_TRAFFIC_FILE_BYTES = 1 << 20
MAX_SECONDS = 86_400.0


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Distribution(_Strict):
    """A time in seconds drawn per call: exponential (by its mean), lognormal (mean and standard
    deviation), fixed, or empirical (drawn from the listed values)."""

    distribution: Literal["exponential", "lognormal", "fixed", "empirical"] = "exponential"
    mean: Annotated[float, Field(gt=0, le=MAX_SECONDS)] | None = None
    sd: Annotated[float, Field(ge=0, le=MAX_SECONDS)] | None = None
    values: tuple[Annotated[float, Field(ge=0, le=MAX_SECONDS)], ...] = ()

    @model_validator(mode="after")
    def _complete(self) -> Distribution:
        if self.distribution == "empirical":
            if not self.values:
                raise ValueError("an empirical distribution needs `values` (a list of seconds)")
            if self.mean is not None or self.sd is not None:
                raise ValueError("an empirical distribution takes `values` only")
        else:
            if self.mean is None:
                raise ValueError(f"a {self.distribution} distribution needs `mean` (seconds)")
            if self.values:
                raise ValueError("`values` belongs to an empirical distribution")
            if (self.sd is None) != (self.distribution != "lognormal"):
                raise ValueError("`sd` is given for a lognormal distribution, and only for it")
        return self

    @property
    def average(self) -> float:
        return sum(self.values) / len(self.values) if self.values else float(self.mean or 0.0)


Seconds = Annotated[float, Field(gt=0, le=MAX_SECONDS)]
TimeSpec = Annotated[Seconds | Distribution, Field(description="mean seconds (exponential), or a distribution")]
Rate = Annotated[float, Field(ge=0, le=MAX_CALLS_PER_HOUR)]
RateSpec = Annotated[Rate | tuple[Rate, ...], Field(description="calls per hour, or one figure per interval")]


class Stream(_Strict):
    calls_per_hour: RateSpec
    handle_time_s: TimeSpec
    patience_s: TimeSpec | None = Field(default=None, description="how long callers wait before hanging up; "
                                        "none: they wait until served or released")

    @model_validator(mode="after")
    def _some_rate(self) -> Stream:
        if isinstance(self.calls_per_hour, tuple) and not self.calls_per_hour:
            raise ValueError("calls_per_hour: an empty list (give at least one figure)")
        return self


class TierStream(Stream):
    tier: str
    brand: str = "unknown"


class TrafficFile(_Strict):
    hours: Annotated[float, Field(gt=0, le=24 * 31)] = 24
    interval_minutes: Annotated[float, Field(gt=0, le=24 * 60)] = 60
    warmup_minutes: Annotated[float, Field(ge=0, le=24 * 60)] = Field(
        default=0, description="callers arriving this early are served but not counted (the hotline starts empty)")
    wrap_up_s: Annotated[float, Field(ge=0, le=3600)] = Field(
        default=0, description="after each call an agent takes this long before the next (queues.conf wrapuptime)")
    answer_delay_s: Annotated[float, Field(ge=0, le=120)] = Field(
        default=0, description="from an agent being offered a caller to talking (ringing), counted in the wait")
    levels: dict[str, Stream] = Field(default_factory=dict)
    tiers: tuple[TierStream, ...] = ()

    @model_validator(mode="after")
    def _some_traffic(self) -> TrafficFile:
        if not self.levels and not self.tiers:
            raise ValueError("no traffic: give `levels:` (per access level) or `tiers:` (per tier and brand)")
        return self


@dataclass(frozen=True, slots=True)
class Arrivals:
    """One stream of callers, resolved to the level whose queue they wait in."""

    level: str
    source: str  # the level, or "tier x brand", as the file named it
    rates: tuple[float, ...]  # calls per hour, one per interval, cycled over the period
    handle: Distribution
    patience: Distribution | None


@dataclass(frozen=True, slots=True)
class Traffic:
    hours: float
    interval_s: float
    warmup_s: float
    wrap_up_s: float
    answer_delay_s: float
    streams: tuple[Arrivals, ...]
    source: str = ""

    @property
    def levels(self) -> frozenset[str]:
        """The levels this traffic offers calls to."""
        return frozenset(stream.level for stream in self.streams)

    @property
    def period_s(self) -> float:
        return self.hours * 3600

    def rate_at(self, stream: Arrivals, t: float) -> float:
        """Calls per second of `stream` at time `t` of the period."""
        return stream.rates[int(t // self.interval_s) % len(stream.rates)] / 3600

    def offered_per_level(self) -> dict[str, float]:
        """Expected calls in the counted part of the period, per level."""
        out: dict[str, float] = {}
        for stream in self.streams:
            expected = 0.0
            t = 0.0
            while t < self.period_s:
                end = min(self.period_s, (math.floor(t / self.interval_s) + 1) * self.interval_s)
                counted = max(0.0, end - max(t, self.warmup_s))
                expected += self.rate_at(stream, t) * counted
                t = end
            out[stream.level] = out.get(stream.level, 0.0) + expected
        return out

    def scaled(self, factor: float) -> Traffic:
        streams = tuple(Arrivals(s.level, s.source, tuple(r * factor for r in s.rates), s.handle, s.patience)
                        for s in self.streams)
        return Traffic(self.hours, self.interval_s, self.warmup_s, self.wrap_up_s, self.answer_delay_s, streams,
                       self.source)


def as_distribution(spec: float | Distribution | None) -> Distribution | None:
    if spec is None or isinstance(spec, Distribution):
        return spec
    return Distribution(distribution="exponential", mean=spec)


def _rates(spec: float | tuple[float, ...]) -> tuple[float, ...]:
    return spec if isinstance(spec, tuple) else (spec,)


def traffic_from_file(parsed: TrafficFile, policy: Policy, where: LoadedYaml | None = None) -> Traffic:
    """Resolve levels and tier x brand streams against the policy; unknown names are located errors."""
    problems: list[Problem] = []
    known = {level.name for level in policy.levels}
    streams: list[Arrivals] = []

    def problem(loc: Sequence[str | int], message: str) -> None:
        problems.append(where.problem(loc, message) if where else Problem("traffic", "", message))

    for name, stream in parsed.levels.items():
        if name not in known:
            problem(("levels", name), f"no access level {name!r} in the policy (known: {', '.join(sorted(known))})")
            continue
        handle = as_distribution(stream.handle_time_s)
        assert handle is not None
        streams.append(Arrivals(name, name, _rates(stream.calls_per_hour), handle, as_distribution(stream.patience_s)))
    tiers = set(policy.tiers.labels)
    for index, tier_stream in enumerate(parsed.tiers):
        if tier_stream.tier not in tiers:
            problem(("tiers", index, "tier"), f"no tier {tier_stream.tier!r} in the policy")
            continue
        if tier_stream.brand not in policy.brands:
            problem(("tiers", index, "brand"), f"no brand {tier_stream.brand!r} in the policy")
            continue
        level = matching_rule(policy, tier_stream.tier, tier_stream.brand)[1].level
        handle = as_distribution(tier_stream.handle_time_s)
        assert handle is not None
        streams.append(Arrivals(level, f"{tier_stream.tier} x {tier_stream.brand}", _rates(tier_stream.calls_per_hour),
                                handle, as_distribution(tier_stream.patience_s)))
    if parsed.warmup_minutes * 60 >= parsed.hours * 3600:
        problem(("warmup_minutes",), "the warm-up is as long as the whole period: nothing would be counted")
    if problems:
        raise ConfigFileError(problems)
    traffic = Traffic(parsed.hours, parsed.interval_minutes * 60, parsed.warmup_minutes * 60, parsed.wrap_up_s,
                      parsed.answer_delay_s, tuple(streams), where.path if where else "")
    expected = sum(traffic.offered_per_level().values())
    if expected > MAX_CALLS_PER_REPLICATION:
        problem((), f"{expected:,.0f} calls in {parsed.hours:g} h: a what-if simulates at most "
                    f"{MAX_CALLS_PER_REPLICATION:,} calls per replication (shorten the period or lower the rates)")
        raise ConfigFileError(problems)
    return traffic


def traffic_from_loaded(loaded: LoadedYaml, policy: Policy) -> Traffic:
    if not isinstance(loaded.data, dict):
        raise ConfigFileError([loaded.problem((), "a traffic file is a mapping (hours, levels or tiers)")])
    try:
        parsed = TrafficFile.model_validate(loaded.data)
    except ValidationError as exc:
        problems: dict[tuple[str | int, ...], Problem] = {}
        # A value that fits no member of a union fails once per member: say the one for its
        # shape (a mapping was meant as a distribution, a number as seconds).
        errors = sorted(exc.errors(), key=lambda e: isinstance(e["input"], dict)
                        and any("float" in str(part) for part in e["loc"]))
        for err in errors:
            place = _where(err["loc"])
            problems.setdefault(place, loaded.problem(place, schema_message(err)))
        raise ConfigFileError(list(problems.values())) from None
    return traffic_from_file(parsed, policy, loaded)


_UNION_TAGS = frozenset({"float", "int", "Distribution", "tuple"})


def _where(loc: Sequence[Any]) -> tuple[str | int, ...]:
    # pydantic names the union member it tried ("float", "tuple[float, ...]"): not a place in the file.
    return tuple(part for part in loc
                 if isinstance(part, int) or (part not in _UNION_TAGS and not any(c in part for c in "[-")))


def load_traffic(path: Path, policy: Policy) -> Traffic:
    try:
        size = path.stat().st_size
    except OSError:
        size = 0  # load_yaml says what is wrong with it
    if size > MAX_TRAFFIC_FILE_BYTES:
        raise ConfigFileError([Problem(str(path), "", f"{size:,} bytes: a traffic file is at most "
                                                      f"{MAX_TRAFFIC_FILE_BYTES:,}")])
    return traffic_from_loaded(load_yaml(path), policy)


def traffic_schema() -> dict[str, Any]:
    return TrafficFile.model_json_schema()


def traffic_from_demand(demand: Sequence[tuple[str, int, int, int, float, float, int]], days: int,
                        policy: Policy, source: str) -> Traffic:
    """A day of traffic from the call records: per level, each local hour's calls averaged over
    `days`; handle times exponential with the level's mean talk time; patience exponential with
    the estimate total wait / abandons (every queued caller's wait counts, the answered and
    released as waits that did not end in giving up), none when nobody abandoned.
    `demand` rows: (level, hour, calls, answered, talk_s, wait_s, abandoned)."""
    known = {level.name for level in policy.levels}
    by_level: dict[str, list[tuple[str, int, int, int, float, float, int]]] = {}
    for row in demand:
        if row[0] in known:
            by_level.setdefault(row[0], []).append(row)
    streams = []
    for level, rows in by_level.items():
        rates = [0.0] * 24
        for _, hour, calls, *_rest in rows:
            rates[hour] += calls / days
        answered = sum(r[3] for r in rows)
        talk = sum(r[4] for r in rows)
        abandoned = sum(r[6] for r in rows)
        wait = sum(r[5] for r in rows)
        if not answered or not talk:
            continue  # no answered call to learn a handle time from
        patience = Distribution(distribution="exponential", mean=max(1.0, wait / abandoned)) if abandoned else None
        streams.append(Arrivals(level, level, tuple(rates), Distribution(distribution="exponential",
                                                                         mean=max(1.0, talk / answered)), patience))
    if not streams:
        raise ConfigFileError([Problem(source, "", "no answered calls in the call records of that period")])
    return Traffic(24, 3600, 0, 0, 0, tuple(streams), source)
