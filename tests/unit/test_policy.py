from pathlib import Path

import pytest

from hotline_core.policy import DEFAULT_POLICY_FILE, access_level, load_policy
from hotline_core.yamlpos import ConfigFileError

DEFAULT = DEFAULT_POLICY_FILE


def broken(tmp_path: Path, old: str, new: str) -> Path:
    text = DEFAULT.read_text(encoding="utf-8")
    assert old in text, old
    path = tmp_path / "policy.yaml"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(ConfigFileError) as info:
        load_policy(path)
    return [str(p) for p in info.value.problems]


def test_shipped_policy_has_the_domain_defaults() -> None:
    policy = load_policy()
    assert policy.timezone == "Asia/Shanghai"
    assert policy.tiers.precedence == ("highend", "newsub", "campus", "rural")
    assert policy.tiers.newsub_window_days == 30
    assert policy.desks["campus_desk"].months == (2, 3, 9, 10)
    order = [
        access_level(policy, "normal", "gotone"),
        access_level(policy, "highend", "easyown"),
        access_level(policy, "highend", "mzone"),
        access_level(policy, "newsub", "easyown"),
        access_level(policy, "newsub", "mzone"),
        access_level(policy, "normal", "mzone"),
        access_level(policy, "normal", "easyown"),
    ]
    priorities = [level.queue_priority for level in order]
    assert priorities == sorted(priorities, reverse=True)
    assert len(set(priorities)) == 7
    assert access_level(policy, "campus", "mzone").priority_access
    assert not access_level(policy, "rural", "easyown").priority_access


def test_unknown_key_is_named_with_its_line(tmp_path: Path) -> None:
    path = broken(tmp_path, "  newsub_window_days: 30", "  newsub_window_dayz: 30")
    found = problems(path)
    assert any("tiers.newsub_window_dayz: unknown key" in p and f"{path}:" in p for p in found), found
    line = next(i for i, text in enumerate(path.read_text().splitlines(), 1) if "dayz" in text)
    assert any(f"{path}:{line}:" in p for p in found), found


def test_bad_value_names_file_key_and_reason(tmp_path: Path) -> None:
    found = problems(broken(tmp_path, "queue_priority: 60", "queue_priority: high"))
    assert any("levels[1].queue_priority:" in p and "integer" in p for p in found), found


def test_priorities_must_fall_in_listed_order(tmp_path: Path) -> None:
    found = problems(broken(tmp_path, "queue_priority: 35", "queue_priority: 45"))
    assert any("levels[4].queue_priority:" in p and "highest first" in p for p in found), found


def test_undefined_desk_in_skill_chain(tmp_path: Path) -> None:
    found = problems(broken(tmp_path, "skill_chain: [newsub_desk, general]", "skill_chain: [newbie_desk, general]"))
    assert any("skill_chain[0]: desk 'newbie_desk' is not defined" in p for p in found), found


def test_uncovered_tier_brand_pair_is_reported(tmp_path: Path) -> None:
    found = problems(broken(tmp_path, '  - {tier: "*", brand: "*", level: ordinary_easyown}\n', ""))
    assert any("no rule gives a level to tier 'normal' with brand 'easyown'" in p for p in found), found


def test_bad_timezone_month_and_template(tmp_path: Path) -> None:
    assert any("unknown time zone 'Asia/Shanghia'" in p
               for p in problems(broken(tmp_path, "timezone: Asia/Shanghai", "timezone: Asia/Shanghia")))
    assert any("month 13 is not in 1..12" in p for p in problems(broken(tmp_path, "[2, 3, 9, 10]", "[2, 3, 9, 13]")))
    assert any("unknown template field {nam}" in p
               for p in problems(broken(tmp_path, "尊敬的{name}站长,你好", "尊敬的{nam}站长,你好")))


def test_seasonal_only_chain_is_refused(tmp_path: Path) -> None:
    found = problems(broken(tmp_path, "skill_chain: [campus_desk, general]", "skill_chain: [campus_desk]"))
    assert any("every desk in the chain is seasonal" in p for p in found), found


def test_yaml_syntax_error_has_a_position(tmp_path: Path) -> None:
    found = problems(broken(tmp_path, "levels:\n", "levels: [\n"))
    assert any("YAML syntax" in p and f"{tmp_path / 'policy.yaml'}:" in p for p in found), found


def test_missing_file(tmp_path: Path) -> None:
    assert problems(tmp_path / "nope.yaml") == [f"{tmp_path / 'nope.yaml'}: file not found"]
