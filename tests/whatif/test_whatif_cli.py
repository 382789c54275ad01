"""`hotline whatif` as an operator runs it: traffic files, rosters, comparisons, staffing, plots."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from hotline.cli.main import main
from hotline.whatif.engine import draw_callers
from hotline.whatif.traffic import traffic_schema

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "demo" / "whatif"
SMALLEST = "hours: 1\nlevels:\n  ordinary_easyown: {calls_per_hour: 200, handle_time_s: 180}\n"


def whatif(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["whatif", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_the_smallest_traffic_file_gives_one_object_per_level(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "t.yaml").write_text(SMALLEST)
    code, out, _ = whatif(capsys, "--traffic", str(tmp_path / "t.yaml"), "--agents", "14", "--format", "json")
    assert code == 0
    [level] = json.loads(out)
    assert level["level"] == "ordinary_easyown"
    assert 150 < level["offered"] < 250  # 200 an hour, Poisson
    assert 0 <= level["service_level_ci"][0] <= level["service_level"] <= level["service_level_ci"][1] <= 1
    assert level["asa_s"] > 0
    assert level["abandoned"] == 0  # no patience given: nobody hangs up
    assert level["released"] >= 0
    # More agents, better service: the figure responds to the scenario.
    _, fewer, _ = whatif(capsys, "--traffic", str(tmp_path / "t.yaml"), "--agents", "11", "--format", "json")
    assert json.loads(fewer)[0]["service_level"] < level["service_level"]


@pytest.mark.parametrize(("text", "where", "message"), [
    ("hours: 1\nlevels:\n  no_such_level: {calls_per_hour: 10, handle_time_s: 60}\n", ":3:3",
     "no access level 'no_such_level'"),
    ("hours: 1\nlevels:\n  campus: {calls_per_hour: -5, handle_time_s: 60}\n", ":3:", "greater than or equal to 0"),
    ("hours: 1\nlevels:\n  campus:\n    calls_per_hour: 10\n    handle_time_s: {distribution: lognormal, mean: 60}\n",
     ":5:", "sd"),
    ("hours: 1\nlevels:\n  campus: {calls_per_hour: 10, handle_time_s: 60, patience: 30}\n", ":3:", "unknown key"),
    ("hours: 1\ntiers:\n  - {tier: gold, brand: mzone, calls_per_hour: 10, handle_time_s: 60}\n", ":3:", "no tier 'gold'"),
    ("hours: [1\n", ":2:", "YAML syntax"),
    ("hours: 1\n", "", "no traffic"),
])
def test_a_broken_traffic_file_is_refused_with_its_place(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                         text: str, where: str, message: str) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(text)
    code, _, err = whatif(capsys, "--traffic", str(path), "--agents", "5")
    assert code == 2
    assert f"{path}{where}" in err
    assert message in err


def test_same_seed_same_callers_and_comparing_a_scenario_with_itself_shows_no_difference(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "t.yaml").write_text(SMALLEST)
    args = ["--traffic", str(tmp_path / "t.yaml"), "--agents", "13", "--format", "json", "--seed", "9"]
    assert whatif(capsys, *args)[1] == whatif(capsys, *args)[1]
    assert whatif(capsys, *args)[1] != whatif(capsys, *args[:-1], "10")[1]
    _, out, _ = whatif(capsys, *args, "--compare-agents", "13")
    [difference] = json.loads(out)["differences"]
    assert difference["service_level"] == 0  # common random numbers: the very same callers
    assert difference["significant"] is False
    _, out, _ = whatif(capsys, *args, "--compare-agents", "15")
    [difference] = json.loads(out)["differences"]
    assert difference["significant"] is True
    assert difference["service_level_ci"][0] > 0


def test_callers_do_not_depend_on_the_scenario(tmp_path: Path) -> None:
    """Common random numbers: the callers are drawn before routing, from the traffic alone."""
    from hotline.whatif.traffic import load_traffic
    from hotline_core.policy import load_policy

    policy = load_policy()
    traffic = load_traffic(DEMO / "september.yaml", policy)
    assert draw_callers(traffic, 1, 0) == draw_callers(traffic, 1, 0)
    assert draw_callers(traffic, 1, 0) != draw_callers(traffic, 1, 1)


def test_the_demo_campus_desk_what_if_runs_and_draws_its_plot(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    plot = tmp_path / "campus.png"
    code, out, _ = whatif(capsys, "--traffic", str(DEMO / "september.yaml"), "--roster", str(DEMO / "agents-30.csv"),
                          "--at", "2026-09-15", "--compare-policy", str(DEMO / "policy-campus4.yaml"),
                          "--compare-roster", str(DEMO / "agents-32.csv"), "--replications", "4",
                          "--format", "json", "--plot", str(plot))
    assert code == 0
    result = json.loads(out)
    desks_a = {d["desk"]: d["agents"] for d in result["a"]["desks"]}
    desks_b = {d["desk"]: d["agents"] for d in result["b"]["desks"]}
    assert desks_a["campus_desk"] == 2  # September: the seasonal desk is open
    assert desks_b["campus_desk"] == 4
    campus = next(d for d in result["differences"] if d["level"] == "campus")
    assert campus["service_level"] > 0
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_seasonal_desks_follow_the_date() -> None:
    """September: campus callers reach the campus desk first and the general group next; November:
    the desk is closed, its agents answer campus callers as the general group does."""
    from ami_bridge.roster import parse_roster
    from hotline.whatif.setup import setup_from_roster
    from hotline_core.policy import load_policy

    policy = load_policy()
    agents, _ = parse_roster((DEMO / "agents-30.csv").read_text())
    september = setup_from_roster(policy, agents, date(2026, 9, 15))
    november = setup_from_roster(policy, agents, date(2026, 11, 15))
    campus = {group.desk: dict(group.penalties)["campus"] for group in september.groups}
    assert campus["campus_desk"] == 0
    assert campus["general"] == 1
    assert {dict(group.penalties)["campus"] for group in november.groups} == {0}
    assert september.desk_sizes()["campus_desk"] == 2


def test_staff_finds_the_fewest_agents_and_draws_the_curve(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "t.yaml").write_text(SMALLEST)
    plot = tmp_path / "staff.svg"
    code, out, _ = whatif(capsys, "staff", "--traffic", str(tmp_path / "t.yaml"), "--replications", "5",
                          "--format", "json", "--plot", str(plot))
    assert code == 0
    plan = json.loads(out)
    total = plan["total"]
    by_agents = {point["agents"]: point["levels"] for point in plan["curve"]}
    ordinary = {n: next(lv for lv in levels if lv["level"] == "ordinary_easyown") for n, levels in by_agents.items()}
    assert ordinary[total]["service_level"] >= ordinary[total]["target"]
    assert ordinary[total - 1]["service_level"] < ordinary[total - 1]["target"]  # one fewer misses
    assert 10 <= total <= 20  # 10 erlangs offered, 85% in 30 s
    assert plot.read_text().lstrip().startswith("<?xml")


def test_roster_problems_and_bad_options_are_said(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "t.yaml").write_text(SMALLEST)
    bad = tmp_path / "roster.csv"
    bad.write_text("agent_id,name,interface,skills,tenure_start,satisfaction,first_contact_resolution\n"
                   "a1,A,PJSIP/a1,general,not-a-date,97%,90%\n")
    code, _, err = whatif(capsys, "--traffic", str(tmp_path / "t.yaml"), "--roster", str(bad))
    assert code == 2
    assert f"{bad}:2" in err
    code, _, err = whatif(capsys, "--traffic", str(tmp_path / "t.yaml"), "--agents", "5", "--plot", "x.pdf")
    assert (code, "a plot is written as .png or .svg") == (2, err.strip().split(": ", 2)[-1])
    code, _, err = whatif(capsys, "--traffic", str(tmp_path / "t.yaml"), "--agents", "5", "--replications", "1")
    assert code == 2
    assert "at least two" in err


def test_the_published_schema_is_the_one_the_loader_checks() -> None:
    published = json.loads((ROOT / "hotline" / "whatif" / "traffic.schema.json").read_text())
    assert published == traffic_schema(), "regenerate: hotline whatif schema > hotline/whatif/traffic.schema.json"


def test_a_what_if_too_big_to_run_is_refused_before_it_starts(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    month = tmp_path / "month.yaml"
    month.write_text("hours: 744\nlevels:\n  ordinary_easyown: {calls_per_hour: 1000000, handle_time_s: 180}\n")
    code, _, err = whatif(capsys, "--traffic", str(month), "--agents", "14")
    assert code == 2
    assert "744,000,000 calls in 744 h: a what-if simulates at most 5,000,000 calls per replication" in err
    big = tmp_path / "big.yaml"
    big.write_text(SMALLEST + "# " + "x" * (2 << 20) + "\n")
    code, _, err = whatif(capsys, "--traffic", str(big), "--agents", "14")
    assert code == 2
    assert "a traffic file is at most 1,048,576" in err
