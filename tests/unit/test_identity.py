"""Identity resolution by value: no Redis, just rows, the policy and the call time."""

import json
from datetime import UTC, datetime, timedelta
from types import MappingProxyType

import pytest

from hotline_core.policy import Policy
from tests.conftest import local
from tier_lookup.identity import IdentityResolver, resolve_identity, unidentified
from tier_lookup.tables import parse_activation

NUMBER = "8613800138000"


def rows(policy: Policy, *tables: str, brand: str | None = None, activated: str = "2026-11-01") -> dict:
    out: dict[str, dict[str, str]] = {}
    for table in tables:
        if table == "newsub":
            out[table] = {"activated_at": str(parse_activation(activated, policy.zone))}
        elif table == "rural":
            out[table] = {"name": "王"}
        else:
            out[table] = {}
    if brand:
        out["brand"] = {"brand": brand}
    return out


@pytest.mark.parametrize(
    ("tables", "tier"),
    [
        (("highend", "newsub", "campus", "rural"), "highend"),
        (("newsub", "campus", "rural"), "newsub"),
        (("campus", "rural"), "campus"),
        (("rural",), "rural"),
        ((), "normal"),
        (("highend", "rural"), "highend"),
    ],
)
def test_precedence_picks_exactly_one_tier(policy: Policy, tables: tuple[str, ...], tier: str) -> None:
    identity = resolve_identity(NUMBER, rows(policy, *tables, brand="easyown"), policy, local(policy, "2026-11-10T10:00"))
    assert identity.tier == tier
    assert identity.label == policy.tiers.labels[tier]
    assert set(identity.matched) == {*tables, "brand"}


def test_newsub_window_boundary_both_sides(policy: Policy) -> None:
    found = rows(policy, "newsub", brand="mzone", activated="2026-11-01T09:30:00")
    # 30 days after 2026-11-01 09:30 Shanghai time is 2026-12-01 09:30.
    just_before = local(policy, "2026-12-01T09:29:59")
    at_end = local(policy, "2026-12-01T09:30:00")
    assert resolve_identity(NUMBER, found, policy, just_before).tier == "newsub"
    assert resolve_identity(NUMBER, found, policy, at_end).tier == "normal"
    assert resolve_identity(NUMBER, found, policy, local(policy, "2026-11-01T09:29:59")).tier == "normal"


def test_newsub_window_is_counted_in_the_operators_time_zone(policy: Policy) -> None:
    # A date-only activation means local midnight: 2026-11-01 00:00 +08:00 = 2026-10-31 16:00 UTC.
    found = rows(policy, "newsub", brand="easyown", activated="2026-11-01")
    end_utc = datetime(2026, 11, 30, 16, 0, tzinfo=UTC)
    assert resolve_identity(NUMBER, found, policy, end_utc - timedelta(seconds=1)).tier == "newsub"
    assert resolve_identity(NUMBER, found, policy, end_utc).tier == "normal"


def test_newsub_that_expired_falls_through_to_the_next_tier(policy: Policy) -> None:
    found = rows(policy, "newsub", "campus", brand="mzone", activated="2026-01-01")
    assert resolve_identity(NUMBER, found, policy, local(policy, "2026-11-10T10:00")).tier == "campus"


@pytest.mark.parametrize(
    ("tables", "brand", "level"),
    [
        ((), "gotone", "gotone_vip"),
        (("highend",), "gotone", "gotone_vip"),
        (("highend",), "easyown", "highend_easyown"),
        (("highend",), "mzone", "highend_mzone"),
        (("newsub",), "easyown", "newsub_easyown"),
        (("newsub",), "mzone", "newsub_mzone"),
        (("campus",), "mzone", "campus"),
        (("rural",), "mzone", "ordinary_mzone"),
        ((), "mzone", "ordinary_mzone"),
        ((), "easyown", "ordinary_easyown"),
        ((), None, "ordinary_easyown"),
    ],
)
def test_priority_matrix(policy: Policy, tables: tuple[str, ...], brand: str | None, level: str) -> None:
    identity = resolve_identity(NUMBER, rows(policy, *tables, brand=brand), policy, local(policy, "2026-11-10T10:00"))
    assert identity.level == level
    assert identity.queue_priority == policy.level(level).queue_priority


def test_queue_priority_order_follows_the_domain(policy: Policy) -> None:
    at = local(policy, "2026-11-10T10:00")
    cases = [((), "gotone"), (("highend",), "easyown"), (("highend",), "mzone"), (("newsub",), "easyown"),
             (("newsub",), "mzone"), ((), "mzone"), ((), "easyown")]
    prios = [resolve_identity(NUMBER, rows(policy, *t, brand=b), policy, at).queue_priority for t, b in cases]
    assert prios == sorted(prios, reverse=True)
    assert len(set(prios)) == len(prios)


def test_campus_desk_only_in_its_months(policy: Policy) -> None:
    found = rows(policy, "campus", brand="mzone")
    september = resolve_identity(NUMBER, found, policy, local(policy, "2026-09-15T10:00"))
    november = resolve_identity(NUMBER, found, policy, local(policy, "2026-11-15T10:00"))
    assert september.skill_chain == ("campus_desk", "general")
    assert november.skill_chain == ("general",)
    # Seasons turn at local midnight: 2026-10-31 16:30 UTC is already November 1st in Shanghai.
    assert resolve_identity(NUMBER, found, policy, datetime(2026, 10, 31, 16, 30, tzinfo=UTC)).skill_chain == (
        "general",
    )


def test_rural_liaison_gets_a_personal_greeting(policy: Policy) -> None:
    identity = resolve_identity(NUMBER, rows(policy, "rural", brand="easyown"), policy, local(policy, "2026-11-10T10:00"))
    assert identity.greeting == "尊敬的王站长,你好,有什么可以帮到您"
    assert identity.name == "王"
    assert not identity.priority_access


def test_flags_and_json_shape(policy: Policy) -> None:
    found = rows(policy, "redlist", "blacklist", brand="mzone")
    identity = resolve_identity(NUMBER, found, policy, local(policy, "2026-11-10T10:00"))
    assert identity.redlist
    assert identity.blacklist
    data = identity.to_json()
    for key in ("number", "tier", "label", "brand", "level", "queue_priority", "skill_chain", "greeting",
                "matched", "degraded"):
        assert key in data
    assert isinstance(data["skill_chain"], list)
    assert isinstance(data["queue_priority"], int)


def test_unidentified_caller_is_normal(policy: Policy) -> None:
    identity = unidentified(policy, local(policy, "2026-11-10T10:00"), degraded=True)
    assert (identity.tier, identity.brand, identity.number, identity.degraded) == ("normal", "unknown", None, True)


def test_the_call_paths_resolver_decides_as_the_pure_function_does(policy: Policy) -> None:
    """The resolver keeps what tier, brand, month and name decide; a kept decision must not leak
    into a caller whose month, name, newsub window or flags differ. A limit of 2 makes it start
    over several times on the way."""
    resolver = IdentityResolver(policy, limit=2)
    cases = []
    for when in ("2026-09-10T10:00", "2026-11-10T10:00", "2026-11-30T23:59", "2026-12-01T00:00"):
        for tables in (("campus",), ("newsub", "campus"), ("rural",), ("highend", "blacklist"), ()):
            for brand in ("gotone", "easyown", None, "no-such-brand"):
                found = rows(policy, *tables, brand=brand)
                cases.append((found, local(policy, when)))
    cases.append(({"rural": {"name": "李"}}, local(policy, "2026-11-10T10:00")))
    for found, at in cases + cases[::-1]:
        assert resolver.resolve(NUMBER, found, at) == resolve_identity(NUMBER, found, policy, at)
    assert resolver.resolve(NUMBER, {}, local(policy, "2026-11-10T10:00"), degraded=True) == unidentified(
        policy, local(policy, "2026-11-10T10:00"), NUMBER, degraded=True)


def test_the_records_json_is_the_identitys_json(policy: Policy) -> None:
    at = local(policy, "2026-11-10T10:00")
    found = rows(policy, "redlist", "rural", brand="mzone")  # a name in Chinese: UTF-8 both ways
    resolver = IdentityResolver(policy)
    identities = [resolve_identity(NUMBER, found, policy, at), resolver.resolve(NUMBER, found, at),
                  unidentified(policy, at, degraded=True),
                  resolve_identity(NUMBER, {t: MappingProxyType(dict(r)) for t, r in found.items()}, policy, at)]
    for identity in identities:
        assert json.loads(identity.json_bytes()) == identity.to_json()
