"""Measured service, the pure parts: who is offered the survey, what an answer means, each
agent's KPIs and the desk rule on them, the desk moves, and the schedule."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime
from typing import Any

import pytest

from ami_bridge.desks import assign_desks
from ami_bridge.roster import Agent, edit
from hotline.records.kpis import agent_kpis, desk_changes, measured
from hotline.records.report import COUNTS
from hotline.records.staffing import due_period, measurement_period
from hotline_core.policy import Policy, load_policy
from hotline_core.survey import SurveyResult, offered, result


@pytest.fixture
def policy() -> Policy:
    return load_policy()


def agent(agent_id: str, satisfaction: float = 0.97, resolution: float = 0.9, since: str = "2022-01-01") -> Agent:
    return Agent(agent_id, agent_id.upper(), f"PJSIP/{agent_id}", (), date.fromisoformat(since), satisfaction,
                 resolution)


def counts(agent_id: str, **given: int) -> dict[str, Any]:
    return {"agent": agent_id, **dict.fromkeys(COUNTS, 0), **given}


def test_the_survey_is_offered_by_level_and_a_reproducible_sample(policy: Policy) -> None:
    survey = policy.survey
    assert survey is not None
    assert offered(survey, "ordinary_easyown", "1796000000.1")
    assert not offered(None, "ordinary_easyown", "1796000000.1")
    only_vip = survey.model_copy(update={"levels": ("gotone_vip",)})
    assert not offered(only_vip, "ordinary_easyown", "1796000000.1")
    assert offered(only_vip, "gotone_vip", "1796000000.1")
    half = survey.model_copy(update={"share": 0.5})
    drawn = [offered(half, "campus", f"1796000000.{n}") for n in range(2000)]
    assert 900 < sum(drawn) < 1100  # about half
    assert drawn == [offered(half, "campus", f"1796000000.{n}") for n in range(2000)]  # the same calls every time
    assert not offered(survey.model_copy(update={"enabled": False}), "campus", "1796000000.1")


def test_what_the_callers_input_comes_to(policy: Policy) -> None:
    survey = policy.survey
    assert survey is not None
    assert result(survey, "1", hung_up=False) == SurveyResult("answered", "1", "满意", True)
    assert result(survey, "3", hung_up=True) == SurveyResult("answered", "3", "不满意", False)  # left during the thanks
    assert result(survey, "7", hung_up=False) == SurveyResult("invalid")
    assert result(survey, "", hung_up=False) == SurveyResult("no answer")
    assert result(survey, "", hung_up=True) == SurveyResult("hung up")
    assert result(survey, "2", hung_up=False).fields() == {
        "survey_result": "answered", "survey": "2", "survey_label": "一般", "survey_satisfied": "0"}


def test_a_measured_figure_counts_from_its_minimum_sample(policy: Policy) -> None:
    rule = policy.measurement
    typed = agent("agent1", 0.97, 0.90)
    thin = measured(typed, counts("agent1", answered=10, surveyed=rule.min_surveys - 1, satisfied=0,
                                  fcr_decided=rule.min_fcr_calls, fcr_resolved=rule.min_fcr_calls // 2), policy)
    assert (thin.satisfaction, thin.first_contact_resolution, thin.measured) == (0.97, 0.5, ("first_contact_resolution",))
    thick = measured(thin, counts("agent1", surveyed=40, satisfied=30, fcr_decided=10, fcr_resolved=10), policy)
    # Satisfaction now measured; resolution keeps last time's measured value (too few calls now).
    assert (thick.satisfaction, thick.first_contact_resolution) == (0.75, 0.5)
    assert thick.measured == ("satisfaction", "first_contact_resolution")
    assert measured(typed, None, policy) == typed


def test_kpis_judge_measured_figures_and_say_which_were_typed_in(policy: Policy) -> None:
    roster = [agent("agent1", 0.99, 0.95), agent("agent2", 0.90, 0.95, since="2026-10-01"), agent("agent3")]
    rows = {k.agent: k for k in agent_kpis([
        counts("agent1", answered=120, talk_sum=12_000, talked=120, surveyed=60, satisfied=54, fcr_decided=100,
               fcr_resolved=95),
        counts("agent2", answered=5, surveyed=2, satisfied=2),
        counts("gone", answered=3),
        counts("", answered=0, abandoned=4),  # calls no agent took: no row
    ], roster, policy, date(2026, 12, 7))}
    first = rows["agent1"]
    assert (first.calls, first.surveyed, first.csat, first.fcr, first.aht_s) == (120, 60, 0.9, 0.95, 100.0)
    assert (first.qualified, first.reasons, first.typed_in) == (False, ("satisfaction 90% < 95%",), ())
    second = rows["agent2"]
    assert second.typed_in == ("satisfaction", "first_contact_resolution")
    assert second.reasons == ("satisfaction 90% < 95% (typed in)", "tenure 2 months < 6")
    assert (rows["agent3"].calls, rows["agent3"].csat, rows["agent3"].qualified) == (0, None, True)
    assert (rows["gone"].reasons, rows["gone"].tenure_months) == (("not on the roster",), None)
    assert set(rows) == {"agent1", "agent2", "agent3", "gone"}


def test_desk_moves_say_who_leaves_and_joins_and_why(policy: Policy) -> None:
    today = date(2026, 12, 7)
    roster = [agent(f"agent{i}", 0.99 - i / 100, 0.95) for i in range(1, 12)]
    before = assign_desks(roster, policy, today)
    vip = before.desks["vip_desk"]
    fallen = next(a for a in roster if a.agent_id == vip[0])
    after_roster = [replace(a, satisfaction=0.80, measured=("satisfaction",)) if a is fallen else a for a in roster]
    moves = {m.agent: m for m in desk_changes(before, assign_desks(after_roster, policy, today))}
    assert moves[fallen.agent_id].leaves == "vip_desk"
    assert "satisfaction 80% < 95%" in moves[fallen.agent_id].why
    assert any(m.joins == "vip_desk" for m in moves.values())


def test_the_measurement_period_and_the_schedule(policy: Policy) -> None:
    period = measurement_period(policy, date(2026, 5, 31))
    assert (period.start.date(), period.end.date()) == (date(2026, 2, 28), date(2026, 6, 1))  # Feb has no 31st
    assert due_period(policy, datetime(2026, 12, 1, 2, 59, tzinfo=policy.zone)) is None
    assert due_period(policy, datetime(2026, 12, 1, 3, 0, tzinfo=policy.zone)) == "2026-12"
    assert due_period(policy, datetime(2026, 11, 30, 19, 0, tzinfo=UTC)) == "2026-12"  # 03:00 in Shanghai
    never = policy.model_copy(update={"measurement": policy.measurement.model_copy(update={"reevaluate_day": 0})})
    assert due_period(never, datetime(2026, 12, 9, tzinfo=UTC)) is None


def test_typing_a_figure_in_makes_it_typed_again() -> None:
    measured_agent = Agent("a1", "A", "PJSIP/a1", (), date(2022, 1, 1), 0.9, 0.8, ("satisfaction", "first_contact_resolution"))
    assert Agent.from_json(measured_agent.to_json()) == measured_agent
    assert edit(measured_agent, {"satisfaction": "97%"}).measured == ("first_contact_resolution",)
    assert Agent.from_json('{"agent_id": "a2", "name": "B", "interface": "PJSIP/a2", "skills": [], '
                           '"tenure_start": "2022-01-01", "satisfaction": 0.9, "first_contact_resolution": 0.8}'
                           ).measured == ()
