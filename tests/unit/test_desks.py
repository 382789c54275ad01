"""Roster parsing, desk assignment and queue membership, by value."""

from __future__ import annotations

from datetime import date

import pytest

from ami_bridge.desks import assign_desks, judge, queue_members
from ami_bridge.roster import Agent, RosterError, edit, parse_roster
from hotline_core.policy import Policy

HEADER = "agent_id,name,interface,skills,tenure_start,satisfaction,first_contact_resolution\n"
TODAY = date(2026, 11, 22)


def agent(i: int, sat: float = 0.97, fcr: float = 0.9, since: date = date(2024, 1, 1)) -> Agent:
    return Agent(f"agent{i}", f"A{i}", f"PJSIP/agent{i}", (), since, sat, fcr)


def test_roster_csv_accepts_percent_or_share_and_lists_every_bad_row() -> None:
    agents, problems = parse_roster(HEADER + "a1,李娜,PJSIP/a1,billing;vip,2023-03-01,97%,0.9\n")
    assert problems == []
    assert (agents[0].satisfaction, agents[0].first_contact_resolution, agents[0].skills) == (0.97, 0.9, ("billing", "vip"))
    _, problems = parse_roster(HEADER + "a1,x,PJSIP/a1,,2023-03-01,97,90\nBad Id,x,PJSIP/b,,2023-01-01,90,90\n"
                                        "a2,x,telephone,,2023-01-01,90,90\na3,x,PJSIP/a3,,soon,90,90\n"
                                        "a4,x,PJSIP/a4,,2023-01-01,lots,90\na1,x,PJSIP/a1,,2023-03-01,97,90\n")
    assert [p.split(":")[0] for p in problems] == ["line 3", "line 4", "line 5", "line 6", "line 7"]
    assert "already on line 2" in problems[-1]
    assert parse_roster("agent_id,name\n")[1] == ["line 1: required column 'interface' is missing"]


def test_edit_validates_the_whole_agent() -> None:
    updated = edit(agent(1), {"satisfaction": "93%", "skills": "vip;billing"})
    assert (updated.satisfaction, updated.skills) == (0.93, ("vip", "billing"))
    with pytest.raises(RosterError, match="unknown field"):
        edit(agent(1), {"salary": "1"})
    with pytest.raises(RosterError, match="not a number"):
        edit(agent(1), {"satisfaction": "high"})


def test_judging_against_the_rule(policy: Policy) -> None:
    assert judge(agent(1), policy, TODAY).qualified
    verdict = judge(agent(2, sat=0.94, fcr=0.84, since=date(2026, 6, 1)), policy, TODAY)
    assert verdict.reasons == ("satisfaction 94% < 95%", "first-contact resolution 84% < 85%",
                               "tenure 5 months < 6")
    # Six months to the day counts; a day short does not.
    assert judge(agent(3, since=date(2026, 5, 22)), policy, TODAY).qualified
    assert not judge(agent(3, since=date(2026, 5, 23)), policy, TODAY).qualified


def test_best_agents_are_spread_evenly_and_seats_keep_the_qualified_share(policy: Policy) -> None:
    good = [agent(i, sat=0.99 - i / 100) for i in range(1, 9)]  # agent1 best
    weak = [agent(i, sat=0.90) for i in range(20, 30)]
    assignment = assign_desks(good + weak, policy, TODAY)
    desks = assignment.desks
    # Dealt in turn: the best four go one to each desk before any desk gets a second.
    assert [members[0] for members in desks.values()] == ["agent1", "agent2", "agent3", "agent4"]
    for desk, members in desks.items():
        assert assignment.qualified_share(desk) >= 0.70, desk
        assert len(members) <= policy.desks[desk].size  # type: ignore[operator]
    assert set(assignment.unseated) >= {"agent29"}


def test_queue_membership_follows_the_chain_and_the_season(policy: Policy) -> None:
    agents = [agent(i) for i in range(1, 6)]
    assignment = assign_desks(agents, policy, TODAY)
    november = queue_members(agents, assignment, policy, 11)
    september = queue_members(agents, assignment, policy, 9)
    highend = november["hotline-highend_easyown"]
    desk = assignment.desks["highend_desk"]
    assert all(highend[f"PJSIP/{a}"] == 0 for a in desk)
    assert all(p == 1 for i, p in highend.items() if i.removeprefix("PJSIP/") not in desk)
    campus_desk = assignment.desks["campus_desk"]
    assert campus_desk
    assert set(november["hotline-campus"].values()) == {0}  # desk closed: everyone, as general
    assert {september["hotline-campus"][f"PJSIP/{a}"] for a in campus_desk} == {0}
    assert 1 in september["hotline-campus"].values()
    assert set(november["hotline-ordinary_easyown"].values()) == {0}


ROSTER_HEAD = "agent_id,name,interface,skills,tenure_start,satisfaction,first_contact_resolution\n"


def test_a_percent_sign_means_percent() -> None:
    agents, problems = parse_roster(ROSTER_HEAD + "a1,甲,PJSIP/a1,,2022-01-01,1%,0.9\n")
    assert problems == []
    assert agents[0].satisfaction == 0.01  # not 100%: an unqualified agent stays unqualified


def test_rosters_that_would_mislead_are_refused_with_their_line() -> None:
    assert parse_roster(ROSTER_HEAD + "a1,甲,PJSIP/a1,,2022-01-01,99%,95%\na2,乙,PJSIP/a1,,2022-01-01,99%,95%\n")[1] == [
        "line 3: interface PJSIP/a1 is already a1's (one phone rings for one agent)"]
    assert parse_roster(ROSTER_HEAD.replace("skills", "name") + "a1,甲,PJSIP/a1,x,2022-01-01,99%,95%\n")[1] == [
        "line 1: column 'name' appears twice"]
    assert parse_roster(ROSTER_HEAD + "a1,甲\x00,PJSIP/a1,,2022-01-01,99%,95%\n")[1] == [
        "line 2: a NUL character (not a text file?)"]
