"""Fixing a caller's one identity: a pure function of the matched rows, the policy and the call time."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any, NamedTuple

import orjson

from hotline_core.policy import NORMAL, Policy, matching_rule, render_template

FLAG_TABLES = ("redlist", "blacklist")


def newsub_active(activated_at: int, at: datetime, policy: Policy) -> bool:
    """True while `at` lies in [activation, activation + window), counted in local calendar days."""
    activated = datetime.fromtimestamp(activated_at, policy.zone)
    ends = activated + timedelta(days=policy.tiers.newsub_window_days)
    return activated <= at.astimezone(policy.zone) < ends


def _qualifies(tier: str, row: Mapping[str, str], at: datetime, policy: Policy) -> bool:
    if tier != "newsub":
        return True
    try:
        activated_at = int(row.get("activated_at", ""))
    except ValueError:
        # The importer stores epoch seconds; anything else is data we did not write: no priority.
        return False
    return newsub_active(activated_at, at, policy)


@dataclass(frozen=True, slots=True)
class Service:
    """What a caller's tier, brand, local month and name decide: everything of an identity but
    the number and the rows, shared by every caller with the same four."""

    tier: str
    label: str
    brand: str
    brand_label: str
    level: str
    level_label: str
    queue_priority: int
    priority_access: bool
    skill_chain: tuple[str, ...]
    queue: str
    max_wait_s: int
    greeting: str
    access_rule: str
    closed_desks: tuple[str, ...]
    # to_json's fields, made once: a service is shared by many callers, and every call entry's
    # record carries them. Never handed out (to_json copies), so no caller changes them for
    # the next; a plain dict, which copies faster than a read-only view.
    _json: dict[str, Any] = field(init=False, repr=False, compare=False)
    # The same as JSON text without its closing brace, for Identity.json_bytes.
    _json_head: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_json", self._fields())
        object.__setattr__(self, "_json_head", orjson.dumps(self._json)[:-1])

    def to_json(self) -> dict[str, Any]:
        return {**self._json, "skill_chain": list(self.skill_chain), "closed_desks": list(self.closed_desks)}

    def _fields(self) -> dict[str, Any]:
        return {
            "tier": self.tier,
            "label": self.label,
            "brand": self.brand,
            "brand_label": self.brand_label,
            "level": self.level,
            "level_label": self.level_label,
            "queue_priority": self.queue_priority,
            "priority_access": self.priority_access,
            "skill_chain": self.skill_chain,  # lists in to_json (JSON's arrays)
            "queue": self.queue,
            "max_wait_s": self.max_wait_s,
            "greeting": self.greeting,
            "access_rule": self.access_rule,
            "closed_desks": self.closed_desks,
        }


_NO_ROWS: Mapping[str, Mapping[str, str]] = MappingProxyType({})


class Identity(NamedTuple):
    """Who is calling, as the IVR, the queue, the agent screen and the SMS see it: the service
    its tier, brand, month and name give (shared by every caller with the same four), and what
    is this caller's own. Built at every call entry, so it holds the shared part by reference
    rather than copying its fourteen fields, and is a tuple (a frozen dataclass costs three
    times as much to make)."""

    number: str | None
    service: Service
    name: str
    matched: tuple[str, ...]
    redlist: bool
    blacklist: bool
    degraded: bool
    # The stored rows of the tables the number is in (for `hotline calls why`).
    rows: Mapping[str, Mapping[str, str]] = _NO_ROWS

    @property
    def tier(self) -> str:
        return self.service.tier

    @property
    def label(self) -> str:
        return self.service.label

    @property
    def brand(self) -> str:
        return self.service.brand

    @property
    def brand_label(self) -> str:
        return self.service.brand_label

    @property
    def level(self) -> str:
        return self.service.level

    @property
    def level_label(self) -> str:
        return self.service.level_label

    @property
    def queue_priority(self) -> int:
        return self.service.queue_priority

    @property
    def priority_access(self) -> bool:
        return self.service.priority_access

    @property
    def skill_chain(self) -> tuple[str, ...]:
        return self.service.skill_chain

    @property
    def queue(self) -> str:
        """The level's Asterisk queue."""
        return self.service.queue

    @property
    def max_wait_s(self) -> int:
        """The level's longest wait before the release announcement."""
        return self.service.max_wait_s

    @property
    def greeting(self) -> str:
        return self.service.greeting

    @property
    def access_rule(self) -> str:
        """Why: the access rule that gave the level (for `hotline calls why`)."""
        return self.service.access_rule

    @property
    def closed_desks(self) -> tuple[str, ...]:
        """Why: the seasonal desks left out of the skill chain."""
        return self.service.closed_desks

    def to_json(self) -> dict[str, Any]:
        return {
            "number": self.number,
            **self.service.to_json(),
            "name": self.name,
            "matched": list(self.matched),
            "redlist": self.redlist,
            "blacklist": self.blacklist,
            "degraded": self.degraded,
            "rows": {table: dict(row) for table, row in self.rows.items()},
        }

    def json_bytes(self) -> bytes:
        """`to_json` as UTF-8 JSON (the call record's form), the service's part written once per
        service rather than at every call entry (the fields in another order: an object's)."""
        own = orjson.dumps({"number": self.number, "name": self.name, "matched": self.matched,
                            "redlist": self.redlist, "blacklist": self.blacklist, "degraded": self.degraded,
                            "rows": self.rows}, default=dict)  # default: rows held in other mappings
        return self.service._json_head + b"," + own[1:]




def winner(rows: Mapping[str, Mapping[str, str]], policy: Policy, at: datetime) -> tuple[str, str, str]:
    """The winning tier by precedence, the brand, and the name in the winning tier's row."""
    tier = NORMAL
    for candidate in policy.tiers.precedence:
        row = rows.get(candidate)
        if row is not None and _qualifies(candidate, row, at, policy):
            tier = candidate
            break
    brand = rows.get("brand", {}).get("brand", "unknown")
    if brand not in policy.brands:
        brand = "unknown"
    return tier, brand, rows.get(tier, {}).get("name", "")


def service_for(policy: Policy, tier: str, brand: str, month: int, name: str) -> Service:
    """Level, priority, skill chain (seasonal desks of `month` applied) and greeting."""
    rule_index, rule = matching_rule(policy, tier, brand)
    level = policy.level(rule.level)
    chain = tuple(desk for desk in level.skill_chain if policy.desks[desk].open_in(month))
    fields = {
        "name": name,
        "label": policy.tier_label(tier),
        "brand_label": policy.brands[brand].label,
        "level_label": level.label,
    }
    template = policy.greetings.get(tier)
    return Service(
        tier=tier,
        label=fields["label"],
        brand=brand,
        brand_label=fields["brand_label"],
        level=level.name,
        level_label=level.label,
        queue_priority=level.queue_priority,
        priority_access=level.priority_access,
        skill_chain=chain,
        queue=policy.queue(level.name),
        max_wait_s=level.max_wait_seconds,
        greeting=render_template(template, fields) if template else "",
        access_rule=f"access_rules[{rule_index}]: tier {rule.tier}, brand {rule.brand} -> {rule.level}",
        closed_desks=tuple(desk for desk in level.skill_chain if desk not in chain),
    )


def identity_of(number: str | None, rows: Mapping[str, Mapping[str, str]], service: Service, name: str,
                degraded: bool) -> Identity:
    return Identity(number, service, name, tuple(sorted(rows)), "redlist" in rows, "blacklist" in rows, degraded,
                    {table: dict(row) for table, row in rows.items()})


def resolve_identity(
    number: str | None,
    rows: Mapping[str, Mapping[str, str]],
    policy: Policy,
    at: datetime,
    degraded: bool = False,
) -> Identity:
    """Pick the winning tier by precedence, then derive level, priority, skill chain and greeting.

    `rows` maps each table holding the number (tier tables, brand, red/black list) to its stored
    values. `at` must be timezone-aware.
    """
    tier, brand, name = winner(rows, policy, at)
    service = service_for(policy, tier, brand, at.astimezone(policy.zone).month, name)
    return identity_of(number, rows, service, name, degraded)


class IdentityResolver:
    """`resolve_identity` for the call path: the service of each (tier, brand, month, name) is
    derived once and kept, since deriving it was most of the decision's cost and callers share
    a few. Bounded: past `limit` kept services it starts over rather than grows."""

    def __init__(self, policy: Policy, limit: int = 4096):
        self.policy = policy
        self._limit = limit
        self._services: dict[tuple[str, str, int, str], Service] = {}

    def resolve(self, number: str | None, rows: Mapping[str, Mapping[str, str]], at: datetime,
                degraded: bool = False) -> Identity:
        tier, brand, name = winner(rows, self.policy, at)
        key = (tier, brand, at.astimezone(self.policy.zone).month, name)
        service = self._services.get(key)
        if service is None:
            if len(self._services) >= self._limit:
                self._services.clear()
            service = self._services[key] = service_for(self.policy, *key)
        return identity_of(number, rows, service, name, degraded)


def unidentified(policy: Policy, at: datetime, number: str | None = None, degraded: bool = False) -> Identity:
    """The identity of a caller we could not or need not look up: normal tier, unknown brand."""
    return resolve_identity(number, {}, policy, at, degraded=degraded)
