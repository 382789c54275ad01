"""The operator policy: everything in the domain that operators tune, validated once at start.

A policy file is YAML (see hotline_core/data/policy.yaml for the shipped defaults). `load_policy`
returns a frozen `Policy` or raises `ConfigFileError` naming the file, the key and what is
wrong; the service refuses to start on a bad file rather than route callers by a guess.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from hotline_core.yamlpos import ConfigFileError, LoadedYaml, Problem, load_yaml, schema_message

# The four micro-market tables; their names are the storage schema, not operator data.
TIERS: tuple[str, ...] = ("highend", "newsub", "campus", "rural")
NORMAL = "normal"
WILDCARD = "*"
TEMPLATE_FIELDS = frozenset({"name", "label", "brand_label", "level_label"})

# Package data, so an installed wheel finds it as a checkout does.
DEFAULT_POLICY_FILE = Path(str(resources.files("hotline_core").joinpath("data", "policy.yaml")))


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TierSettings(_Frozen):
    precedence: tuple[str, ...]
    labels: dict[str, str]
    newsub_window_days: int = Field(default=30, ge=1, le=366)

    @field_validator("precedence")
    @classmethod
    def _all_tiers_once(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [t for t in value if t not in TIERS]
        if unknown:
            raise ValueError(f"unknown tier {unknown[0]!r}; tiers are {', '.join(TIERS)}")
        if sorted(value) != sorted(TIERS):
            missing = sorted(set(TIERS) - set(value))
            dup = sorted({t for t in value if value.count(t) > 1})
            what = f"missing {', '.join(missing)}" if missing else f"repeated {', '.join(dup)}"
            raise ValueError(f"must list each of {', '.join(TIERS)} exactly once ({what})")
        return value

    @field_validator("labels")
    @classmethod
    def _label_every_tier(cls, value: dict[str, str]) -> dict[str, str]:
        expected = {*TIERS, NORMAL}
        missing = sorted(expected - set(value))
        extra = sorted(set(value) - expected)
        if missing:
            raise ValueError(f"no label for {', '.join(missing)}")
        if extra:
            raise ValueError(f"label for unknown tier {', '.join(extra)}")
        return value


class BrandSpec(_Frozen):
    label: str


class Announcements(_Frozen):
    """What a caller waiting in the level's queue hears besides music (app_queue's announcements)."""

    position: bool = False  # "you are caller number N"
    holdtime: bool = False  # "the expected wait is about N minutes"
    frequency_s: int = Field(default=0, ge=0, le=3600)  # how often position/holdtime are said (0: once, at join)
    periodic_s: int = Field(default=0, ge=0, le=3600)  # a "please stay on the line" every N s (0: none)


class LevelSpec(_Frozen):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    label: str
    queue_priority: int = Field(ge=0, le=1_000_000)
    priority_access: bool
    answer_rate_target: float = Field(gt=0, le=1)
    service_level_seconds: int = Field(ge=1)
    max_queue_length: int = Field(ge=0)
    max_wait_seconds: int = Field(ge=1)
    occupancy_target: float = Field(gt=0, le=1)
    skill_chain: tuple[str, ...] = Field(min_length=1)
    announce: Announcements = Field(default_factory=Announcements)


class AccessRule(_Frozen):
    tier: str
    brand: str
    level: str


class DeskSpec(_Frozen):
    label: str
    months: tuple[int, ...] | None = None
    size: int | None = Field(default=None, ge=1, le=10_000)  # a virtual desk of this many agents
    everyone: bool = False  # the group of all agents (the overflow of last resort)

    @property
    def virtual(self) -> bool:
        return self.size is not None

    @field_validator("months")
    @classmethod
    def _valid_months(cls, value: tuple[int, ...] | None) -> tuple[int, ...] | None:
        if value is not None:
            if not value:
                raise ValueError("an empty month list would never open the desk; omit `months` instead")
            bad = [m for m in value if not 1 <= m <= 12]
            if bad:
                raise ValueError(f"month {bad[0]} is not in 1..12")
        return value

    def open_in(self, month: int) -> bool:
        return self.months is None or month in self.months


class DeskRule(_Frozen):
    min_qualified_share: float = Field(default=0.70, ge=0, le=1)
    min_satisfaction: float = Field(default=0.95, ge=0, le=1)
    min_first_contact_resolution: float = Field(default=0.85, ge=0, le=1)
    min_tenure_months: int = Field(default=6, ge=0, le=600)


class SurveyAnswer(_Frozen):
    label: str = Field(min_length=1, max_length=40)
    satisfied: bool  # counts as a satisfied customer in the satisfaction figure


class SurveySettings(_Frozen):
    """The post-call satisfaction survey: after the agent ends an answered call the caller
    stays on the line and the survey flow (ivr_flows/) asks for one key of the scale."""

    enabled: bool = True
    flow: str = Field(default="survey", pattern=r"^[a-z][a-z0-9_]*$")
    variable: str = Field(default="SURVEY", pattern=r"^[A-Z][A-Z0-9_]*$")  # the flow's menu stores the key here
    scale: dict[Annotated[str, Field(pattern=r"^[0-9]$")], SurveyAnswer] = Field(min_length=2)
    levels: tuple[str, ...] = ()  # the access levels offered it; empty: every level
    share: float = Field(default=1.0, ge=0, le=1)  # a sample of those calls (by call id, reproducible)


class Measurement(_Frozen):
    """How the records measure agents (`hotline agents kpis`, `agents desks --measured`)."""

    # A call answered by an agent is resolved at first contact when the same number does not
    # reach an agent again, and no work order is filed about the call, within this many hours.
    fcr_window_hours: float = Field(default=72, gt=0, le=24 * 31)
    # The months a measurement looks back over (the desk rule's "last three months").
    months: int = Field(default=3, ge=1, le=24)
    # Below these samples a measured figure does not count; the typed-in one stands.
    min_surveys: int = Field(default=30, ge=1)
    min_fcr_calls: int = Field(default=50, ge=1)
    # When the desks are re-staffed from the measurements on their own: this day of each month,
    # at this local hour; 0: never (only `hotline agents desks --measured --apply`).
    reevaluate_day: int = Field(default=1, ge=0, le=28)
    reevaluate_hour: int = Field(default=3, ge=0, le=23)


class ReportSettings(_Frozen):
    # An abandon before this many seconds is a "short abandon": the caller changed their mind
    # rather than gave up waiting. Reports show the service level with and without them.
    short_abandon_seconds: int = Field(default=5, ge=0, le=600)


class AlarmSettings(_Frozen):
    # A level whose service level today stays under its answer-rate target this long.
    below_target_minutes: int = Field(default=15, ge=1, le=1440)
    # A tier table not refreshed within this many hours (its feed is late).
    feed_max_age_hours: dict[str, float] = Field(default_factory=lambda: {"newsub": 26.0, "highend": 768.0})
    # Degraded lookups (Redis slow or away) above this share of call entries over the window.
    degraded_share: float = Field(default=0.05, gt=0, le=1)
    degraded_window_minutes: int = Field(default=5, ge=1, le=120)
    # More SMS queued than this within the window, by every instance together.
    sms_volume_max: int = Field(default=500, ge=1)
    sms_volume_window_minutes: int = Field(default=10, ge=1, le=1440)
    # Call facts waiting in Redis for the records database (it is away or refusing): a quarter of
    # the outbox's cap (200,000), long before the oldest would be dropped.
    outbox_backlog_max: int = Field(default=50_000, ge=1)


class Handling(_Frozen):
    priority: int = Field(ge=0, le=1000)  # dispatch order: higher first
    reply_hours: float = Field(gt=0, le=24 * 90)  # the customer hears back within this
    resolve_hours: float = Field(gt=0, le=24 * 365)  # the order is closed within this


class WorkOrderSettings(_Frozen):
    categories: dict[str, str] = Field(min_length=1)  # code -> label, from the service menu
    handling: dict[str, Handling]  # per tier (the four and normal)
    level_handling: dict[str, Handling] = Field(default_factory=dict)  # per access level, before the tier's
    description_max_chars: int = Field(default=2000, ge=10, le=100_000)
    # The SMS that carries a reply to the customer; fields {order} and {reply}.
    reply_sms: str = "您的工单{order}已处理:{reply} 如有疑问请致电10086。"
    # Where a reply may go besides the caller's own number: regions (ISO codes) and kinds of
    # number (libphonenumber's types in lower case). Domestic mobiles by default: no premium-rate,
    # international or satellite number can be made a recipient by whoever files the order.
    contact_regions: tuple[str, ...] = ("CN",)
    contact_kinds: tuple[str, ...] = ("mobile", "fixed_line_or_mobile")
    reply_max_chars: int = Field(default=500, ge=10, le=5000)
    reply_max_parts: int = Field(default=4, ge=1, le=10)  # SMS parts of the whole reply SMS
    # Quotas per person (orders filed, replies sent, an hour) and per customer's number (reply
    # SMS, a day), shared by every instance.
    orders_per_person_per_hour: int = Field(default=60, ge=1)
    replies_per_person_per_hour: int = Field(default=60, ge=1)
    replies_per_number_per_day: int = Field(default=5, ge=1)


class Policy(_Frozen):
    timezone: str
    tiers: TierSettings
    brands: dict[str, BrandSpec]
    levels: tuple[LevelSpec, ...] = Field(min_length=1)
    access_rules: tuple[AccessRule, ...] = Field(min_length=1)
    desks: dict[str, DeskSpec]
    desk_rule: DeskRule = Field(default_factory=DeskRule)
    greetings: dict[str, str] = Field(default_factory=dict)
    sms_templates: dict[str, str] = Field(default_factory=dict)
    reports: ReportSettings = Field(default_factory=ReportSettings)
    survey: SurveySettings | None = None
    measurement: Measurement = Field(default_factory=Measurement)
    alarms: AlarmSettings = Field(default_factory=AlarmSettings)
    work_orders: WorkOrderSettings | None = None
    source: str = "<memory>"

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (use an IANA name such as Asia/Shanghai)") from None
        return value

    @field_validator("brands")
    @classmethod
    def _unknown_brand_present(cls, value: dict[str, BrandSpec]) -> dict[str, BrandSpec]:
        if "unknown" not in value:
            raise ValueError("must define `unknown`, the brand of numbers missing from the brand table")
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def queue(self, level: str) -> str:
        """The Asterisk queue callers of `level` wait in (asterisk_conf/ renders one per level)."""
        return f"hotline-{level}"

    def level(self, name: str) -> LevelSpec:
        for level in self.levels:
            if level.name == name:
                return level
        raise KeyError(name)

    def tier_label(self, tier: str) -> str:
        return self.tiers.labels[tier]

    @property
    def everyone_group(self) -> str:
        """The group every agent belongs to (the overflow of last resort); "" if none is named."""
        return next((name for name, desk in self.desks.items() if desk.everyone), "")


def _cross_check(policy: Policy) -> list[tuple[tuple[str | int, ...], str]]:
    """Consistency rules a schema alone cannot express; each problem with its key path."""
    problems: list[tuple[tuple[str | int, ...], str]] = []
    names = [lv.name for lv in policy.levels]
    for i, level in enumerate(policy.levels):
        if names.count(level.name) > 1:
            problems.append((("levels", i, "name"), f"level {level.name!r} is defined twice"))
        if i and level.queue_priority >= policy.levels[i - 1].queue_priority:
            problems.append(
                (
                    ("levels", i, "queue_priority"),
                    f"levels are listed highest first, so {level.queue_priority} must be below "
                    f"{policy.levels[i - 1].name}'s {policy.levels[i - 1].queue_priority}",
                )
            )
        for j, desk in enumerate(level.skill_chain):
            if desk not in policy.desks:
                problems.append((("levels", i, "skill_chain", j), f"desk {desk!r} is not defined under desks"))
        known = [policy.desks[d] for d in level.skill_chain if d in policy.desks]
        if known and all(d.months is not None for d in known):
            problems.append(
                (("levels", i, "skill_chain"), "every desk in the chain is seasonal; add a permanent group "
                 "so callers have somewhere to go out of season")
            )
    for name, spec in policy.desks.items():
        if spec.virtual == spec.everyone:
            problems.append((("desks", name), "a desk is either a virtual desk (size: N) or everyone: true"))
    tiers = {*TIERS, NORMAL}
    for i, rule in enumerate(policy.access_rules):
        if rule.tier != WILDCARD and rule.tier not in tiers:
            problems.append((("access_rules", i, "tier"), f"unknown tier {rule.tier!r}"))
        if rule.brand != WILDCARD and rule.brand not in policy.brands:
            problems.append((("access_rules", i, "brand"), f"unknown brand {rule.brand!r}"))
        if rule.level not in names:
            problems.append((("access_rules", i, "level"), f"unknown level {rule.level!r}"))
    for tier in sorted(tiers):
        for brand in sorted(policy.brands):
            if not any(_rule_matches(r, tier, brand) for r in policy.access_rules):
                problems.append((("access_rules",), f"no rule gives a level to tier {tier!r} with brand {brand!r}"))
    orders = policy.work_orders
    if orders is not None:
        for tier in sorted(tiers - set(orders.handling)):
            problems.append((("work_orders", "handling"), f"no handling rule for tier {tier!r}"))
        for tier in sorted(set(orders.handling) - tiers):
            problems.append((("work_orders", "handling", tier), f"unknown tier {tier!r}"))
        for level_name in sorted(set(orders.level_handling) - set(names)):
            problems.append((("work_orders", "level_handling", level_name), f"unknown level {level_name!r}"))
        for name, handling in {**orders.handling, **orders.level_handling}.items():
            if handling.resolve_hours < handling.reply_hours:
                problems.append((("work_orders", name), "resolve_hours is shorter than reply_hours"))
        try:
            orders.reply_sms.format(order="1", reply="x")
        except (KeyError, IndexError, ValueError) as exc:
            problems.append((("work_orders", "reply_sms"), f"bad template ({exc}); fields: {{order}} {{reply}}"))
    survey = policy.survey
    if survey is not None:
        for level_name in sorted(set(survey.levels) - set(names)):
            problems.append((("survey", "levels"), f"unknown level {level_name!r}"))
        if not any(answer.satisfied for answer in survey.scale.values()):
            problems.append((("survey", "scale"), "no answer counts as satisfied: satisfaction would always be 0"))
    for section in ("greetings", "sms_templates"):
        templates: Mapping[str, str] = getattr(policy, section)
        for tier, template in templates.items():
            if tier not in tiers:
                problems.append(((section, tier), f"unknown tier {tier!r}"))
            error = template_error(template)
            if error:
                problems.append(((section, tier), error))
    return problems


def _rule_matches(rule: AccessRule, tier: str, brand: str) -> bool:
    return rule.tier in (WILDCARD, tier) and rule.brand in (WILDCARD, brand)


def matching_rule(policy: Policy, tier: str, brand: str) -> tuple[int, AccessRule]:
    """The first access rule matching `tier` and `brand`, with its position (the check guarantees one)."""
    for index, rule in enumerate(policy.access_rules):
        if _rule_matches(rule, tier, brand):
            return index, rule
    raise LookupError(f"no access rule for tier {tier!r} brand {brand!r}")


def access_level(policy: Policy, tier: str, brand: str) -> LevelSpec:
    """The level of the first access rule matching `tier` and `brand`."""
    return policy.level(matching_rule(policy, tier, brand)[1].level)


def template_error(template: str) -> str | None:
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except ValueError as exc:
        return f"bad template: {exc}"
    for field in fields:
        if field not in TEMPLATE_FIELDS:
            return f"unknown template field {{{field}}}; available: {', '.join(sorted(TEMPLATE_FIELDS))}"
    return None


def render_template(template: str, fields: Mapping[str, str]) -> str:
    return template.format_map({k: fields.get(k, "") for k in TEMPLATE_FIELDS})


def policy_from_loaded(loaded: LoadedYaml) -> Policy:
    if not isinstance(loaded.data, dict):
        raise ConfigFileError([loaded.problem((), "the policy must be a mapping of sections")])
    raw: dict[str, Any] = dict(loaded.data)
    raw["source"] = loaded.path
    try:
        policy = Policy.model_validate(raw)
    except ValidationError as exc:
        problems = [loaded.problem(tuple(err["loc"]), schema_message(err)) for err in exc.errors()]
        raise ConfigFileError(problems) from None
    cross = _cross_check(policy)
    if cross:
        raise ConfigFileError([loaded.problem(loc, msg) for loc, msg in cross])
    return policy


def load_policy(path: Path | str | None = None) -> Policy:
    return policy_from_loaded(load_yaml(Path(path) if path else DEFAULT_POLICY_FILE))


__all__ = [
    "NORMAL",
    "TIERS",
    "AccessRule",
    "ConfigFileError",
    "DeskSpec",
    "LevelSpec",
    "Policy",
    "Problem",
    "access_level",
    "load_policy",
    "render_template",
]

