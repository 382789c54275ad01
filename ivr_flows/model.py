"""The flow language: one YAML file per flow, a start node and named nodes of these kinds.

play       play a prompt (one per tier/level if wanted), then `next`
menu       prompt, DTMF options, timeout, retries, invalid/timeout handling, multi-digit input
branch     rules on the caller's identity, calendar and time of day, or a variable; `else`
set        set a flow variable, then `next`
sms        self-service answered by SMS (e.g. the bill summary), optional prompt, then `next`
transfer   to agents for a service; the queue priority and skill chain come from the identity
goto_flow  continue in another flow
hangup     a prompt, then hang up
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

NODE_ID = r"^[a-z][a-z0-9_]*$"
SOUND = r"^[A-Za-z0-9_/-]+$"
DIGITS = r"^[0-9*#]+$"
_HOURS = re.compile(r"^([01]\d|2[0-3]):[0-5]\d-([01]\d|2[0-4]):[0-5]\d$")


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Prompt(_Strict):
    """A sound name, optionally different per access level or tier (level wins over tier)."""

    default: str = Field(pattern=SOUND)
    levels: dict[str, Annotated[str, Field(pattern=SOUND)]] = Field(default_factory=dict)
    tiers: dict[str, Annotated[str, Field(pattern=SOUND)]] = Field(default_factory=dict)

    def names(self) -> list[str]:
        return [self.default, *self.levels.values(), *self.tiers.values()]


def _prompt(value: object) -> object:
    return {"default": value} if isinstance(value, str) else value


PromptField = Annotated[Prompt, Field(description="sound name, or {default, levels, tiers}")]


class Condition(_Strict):
    """Every given key must hold; a list matches any of its values."""

    tiers: tuple[str, ...] = ()
    brands: tuple[str, ...] = ()
    levels: tuple[str, ...] = ()
    flags: tuple[Literal["redlist", "blacklist", "degraded"], ...] = ()
    months: tuple[Annotated[int, Field(ge=1, le=12)], ...] = ()
    weekdays: tuple[Annotated[int, Field(ge=1, le=7)], ...] = ()  # 1 = Monday
    hours: str | None = None  # "08:00-20:00", local time
    dates: tuple[str, ...] = ()  # YYYY-MM-DD, e.g. public holidays
    vars: dict[str, str] = Field(default_factory=dict)

    @field_validator("hours")
    @classmethod
    def _hours(cls, value: str | None) -> str | None:
        if value is not None and not _HOURS.match(value):
            raise ValueError(f"hours {value!r} must look like 08:00-20:00")
        return value

    @field_validator("dates")
    @classmethod
    def _dates(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for date in value:
            if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", date):
                raise ValueError(f"date {date!r} must be YYYY-MM-DD")
        return value


class Rule(_Strict):
    when: Condition
    goto: str = Field(pattern=NODE_ID)


class Play(_Strict):
    type: Literal["play"]
    prompt: PromptField
    next: str = Field(pattern=NODE_ID)

    _p = field_validator("prompt", mode="before")(_prompt)


class Menu(_Strict):
    type: Literal["menu"]
    prompt: PromptField
    options: dict[Annotated[str, Field(pattern=DIGITS)], Annotated[str, Field(pattern=NODE_ID)]] = Field(min_length=1)
    timeout: float = Field(default=5.0, gt=0, le=60)
    retries: int = Field(default=2, ge=0, le=10)
    digits: int = Field(default=1, ge=1, le=20, description="more than 1: multi-digit input ended by #")
    store: str | None = Field(default=None, pattern=r"^[A-Z][A-Z0-9_]*$", description="keep the input in a variable")
    invalid_prompt: PromptField | None = None
    timeout_prompt: PromptField | None = None
    on_failure: str = Field(pattern=NODE_ID, description="after the retries are used up")

    _p = field_validator("prompt", "invalid_prompt", "timeout_prompt", mode="before")(_prompt)


class Branch(_Strict):
    type: Literal["branch"]
    rules: tuple[Rule, ...] = Field(min_length=1)
    else_: str = Field(alias="else", pattern=NODE_ID)


class SetVar(_Strict):
    type: Literal["set"]
    var: str = Field(pattern=r"^[A-Z][A-Z0-9_]*$")
    value: str
    next: str = Field(pattern=NODE_ID)


class Sms(_Strict):
    type: Literal["sms"]
    template: str = Field(min_length=1, description="text; {name} {label} {brand_label} {level_label} and variables")
    prompt: PromptField | None = None
    next: str = Field(pattern=NODE_ID)

    _p = field_validator("prompt", mode="before")(_prompt)


class Transfer(_Strict):
    type: Literal["transfer"]
    service: str = Field(pattern=NODE_ID)
    queue: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]+$",
                              description="default: the caller's access-level queue")
    prompt: PromptField | None = None

    _p = field_validator("prompt", mode="before")(_prompt)


class GotoFlow(_Strict):
    type: Literal["goto_flow"]
    flow: str = Field(pattern=NODE_ID)


class Hangup(_Strict):
    type: Literal["hangup"]
    prompt: PromptField | None = None

    _p = field_validator("prompt", mode="before")(_prompt)


Node = Annotated[Play | Menu | Branch | SetVar | Sms | Transfer | GotoFlow | Hangup, Field(discriminator="type")]
TERMINAL = (Transfer, GotoFlow, Hangup)


class Flow(_Strict):
    flow: str = Field(pattern=NODE_ID, description="the flow's name; other flows reach it with goto_flow")
    description: str = ""
    start: str = Field(pattern=NODE_ID)
    nodes: dict[Annotated[str, Field(pattern=NODE_ID)], Node] = Field(min_length=1)


def targets(node: Play | Menu | Branch | SetVar | Sms | Transfer | GotoFlow | Hangup) -> list[tuple[str, str]]:
    """(key path, target node id) for every edge leaving `node` within its flow."""
    if isinstance(node, Play | SetVar | Sms):
        return [("next", node.next)]
    if isinstance(node, Menu):
        return [*((f"options.{k}", v) for k, v in node.options.items()), ("on_failure", node.on_failure)]
    if isinstance(node, Branch):
        return [*((f"rules[{i}].goto", r.goto) for i, r in enumerate(node.rules)), ("else", node.else_)]
    return []


def prompts(node: Play | Menu | Branch | SetVar | Sms | Transfer | GotoFlow | Hangup) -> list[tuple[str, Prompt]]:
    found: list[tuple[str, Prompt | None]] = []
    if isinstance(node, Menu):
        found = [("prompt", node.prompt), ("invalid_prompt", node.invalid_prompt),
                 ("timeout_prompt", node.timeout_prompt)]
    elif isinstance(node, Play | Sms | Transfer | Hangup):
        found = [("prompt", node.prompt)]
    return [(key, p) for key, p in found if p is not None]
