"""The dialplan contract: which channel variables call entry sets, from an identity (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from agi.protocol import app_escape, format_command
from tier_lookup.identity import Identity, Service

# Names documented in the README and docs/dialplan.md; the dialplan, the IVR and the queue read them.
CONTRACT: tuple[str, ...] = (
    "HOTLINE_TIER",
    "HOTLINE_TIER_LABEL",
    "HOTLINE_BRAND",
    "HOTLINE_LEVEL",
    "QUEUE_PRIO",
    "HOTLINE_SKILL_CHAIN",
    "HOTLINE_QUEUE",
    "HOTLINE_MAX_WAIT",
    "HOTLINE_GREETING",
    "HOTLINE_FLAGS",
    "HOTLINE_DEGRADED",
)


def identity_variables(identity: Identity) -> list[tuple[str, str]]:
    flags = ",".join(flag for flag in ("redlist", "blacklist") if getattr(identity, flag))
    values = {
        "HOTLINE_TIER": identity.tier,
        "HOTLINE_TIER_LABEL": identity.label,
        "HOTLINE_BRAND": identity.brand,
        "HOTLINE_LEVEL": identity.level,
        "QUEUE_PRIO": str(identity.queue_priority),
        "HOTLINE_SKILL_CHAIN": ",".join(identity.skill_chain),
        "HOTLINE_QUEUE": identity.queue,
        "HOTLINE_MAX_WAIT": str(identity.max_wait_s),
        "HOTLINE_GREETING": identity.greeting,
        "HOTLINE_FLAGS": flags,
        "HOTLINE_DEGRADED": "1" if identity.degraded else "0",
    }
    return [(name, values[name]) for name in CONTRACT]


# Asterisk reads one AGI command into a 2 KiB buffer; past that a command would be cut.
MAX_COMMAND_BYTES = 2000


def set_commands(pairs: Sequence[tuple[str, str]]) -> list[tuple[str, ...]]:
    """AGI commands setting `pairs` on the channel: one `EXEC MSet` (one round trip) when it
    fits Asterisk's command buffer, else one `SET VARIABLE` each.

    Asterisk answers a command only after reading it from a readable socket, so several
    commands written at once stall; MSet is the one-round-trip way (measured in bench/)."""
    argument = ",".join(f"{name}={app_escape(value)}" for name, value in pairs)
    mset = ("EXEC", "MSet", argument)
    if len(format_command(*mset)) <= MAX_COMMAND_BYTES:
        return [mset]
    return one_by_one(pairs)


def one_by_one(pairs: Sequence[tuple[str, str]]) -> list[tuple[str, ...]]:
    """A SET VARIABLE per pair: the fallback when MSet is too long or refused."""
    return [("SET VARIABLE", name, value) for name, value in pairs]


NO_APPLICATION = "-2"  # EXEC's result when Asterisk has no such application


def instead_of_refused(commands: Sequence[tuple[str, ...]], pairs: Sequence[tuple[str, str]]) -> list[tuple[str, ...]]:
    """What to send when Asterisk refused the first of `commands`, which set `pairs` (pure): where
    that was the lone MSet (an Asterisk build without it, or it refused), one SET VARIABLE each;
    after any other refusal nothing (it is counted and logged, the call goes on)."""
    if len(commands) == 1 and commands[0][:2] == ("EXEC", "MSet"):
        return one_by_one(pairs)
    return []


@dataclass(frozen=True, slots=True)
class Contract:
    """The contract's values for one caller and the AGI lines that set them on the channel."""

    variables: tuple[tuple[str, str], ...]
    lines: tuple[bytes, ...]


class ContractLines:
    """The contract for an identity, kept per shape of identity: the values depend only on its
    service (shared by callers with the same tier, brand, month and name), its red and black
    list flags and whether the lookup was degraded. Deriving, escaping and formatting them cost
    more than the rest of the entry's own work, so each shape is done once. Bounded: past
    `limit` shapes the cache starts over rather than grows."""

    def __init__(self, limit: int = 4096):
        self._limit = limit
        # Keyed by the service's id (hashing the service itself means hashing its fourteen
        # fields); the kept service stays alive with its entry, so no other object has its id.
        self._kept: dict[tuple[int, bool, bool, bool], tuple[Service, Contract]] = {}

    def for_identity(self, identity: Identity) -> Contract:
        key = (id(identity.service), identity.redlist, identity.blacklist, identity.degraded)
        kept = self._kept.get(key)
        if kept is None:
            if len(self._kept) >= self._limit:
                self._kept.clear()
            variables = identity_variables(identity)
            lines = tuple(format_command(*command) for command in set_commands(variables))
            kept = self._kept[key] = (identity.service, Contract(tuple(variables), lines))
        return kept[1]
