"""The dialplan contract: which channel variables call entry sets, from an identity (pure)."""

from __future__ import annotations

from tier_lookup.identity import Identity

# Names documented in the README; the dialplan, the IVR and the queue read them.
CONTRACT: tuple[str, ...] = (
    "HOTLINE_TIER",
    "HOTLINE_TIER_LABEL",
    "HOTLINE_BRAND",
    "HOTLINE_LEVEL",
    "QUEUE_PRIO",
    "HOTLINE_SKILL_CHAIN",
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
        "HOTLINE_GREETING": identity.greeting,
        "HOTLINE_FLAGS": flags,
        "HOTLINE_DEGRADED": "1" if identity.degraded else "0",
    }
    return [(name, values[name]) for name in CONTRACT]
