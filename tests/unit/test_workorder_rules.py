"""Work-order rules by value: handling by tier and level, deadlines, who may move what, overdue,
and the checks on what people type."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from hotline.workorders.rules import (
    Filters,
    WorkOrderError,
    check_move,
    deadlines,
    handling_for,
    overdue,
    read_new,
    visible_to,
)
from hotline_core.policy import Policy

T = datetime(2026, 11, 30, 2, 0, tzinfo=UTC)


def test_higher_tiers_are_handled_first_and_faster(policy: Policy) -> None:
    order = ["highend", "newsub", "campus", "normal"]
    rules = [handling_for(policy, tier, None) for tier in order]
    assert [r.priority for r in rules] == sorted((r.priority for r in rules), reverse=True)
    assert [r.reply_hours for r in rules] == sorted(r.reply_hours for r in rules)
    assert handling_for(policy, "normal", "gotone_vip").priority == 95  # the level's rule comes first
    due = deadlines(policy, "rural", "ordinary_easyown", T)
    assert (due.priority, due.reply_due, due.resolve_due) == (60, T + timedelta(hours=24), T + timedelta(hours=72))


def test_status_moves_by_role() -> None:
    check_move("new", "dispatched", "handler")
    check_move("dispatched", "replied", "handler")
    check_move("replied", "closed", "handler")
    check_move("closed", "reopened", "supervisor")
    with pytest.raises(WorkOrderError, match="is for supervisor") as forbidden:
        check_move("closed", "reopened", "handler")
    assert forbidden.value.forbidden
    with pytest.raises(WorkOrderError, match="is for handler or supervisor"):
        check_move("new", "dispatched", "agent")
    with pytest.raises(WorkOrderError, match="cannot become closed; it can become dispatched"):
        check_move("new", "closed", "supervisor")
    with pytest.raises(WorkOrderError, match="unknown status 'done'"):
        check_move("new", "done", "supervisor")


def test_overdue_means_no_reply_in_time_or_not_closed_in_time() -> None:
    reply_due, resolve_due = T + timedelta(hours=4), T + timedelta(hours=24)
    assert not overdue("new", reply_due, resolve_due, T + timedelta(hours=3))
    assert overdue("dispatched", reply_due, resolve_due, T + timedelta(hours=5))
    assert not overdue("replied", reply_due, resolve_due, T + timedelta(hours=5))  # answered in time
    assert overdue("replied", reply_due, resolve_due, T + timedelta(hours=25))  # but not closed in time
    assert not overdue("closed", reply_due, resolve_due, T + timedelta(days=9))


def test_what_people_type_is_checked(policy: Policy) -> None:
    with pytest.raises(WorkOrderError, match="category is missing; one of: bill"):
        read_new({"description": "x"}, policy)
    with pytest.raises(WorkOrderError, match="unknown category 'weather'"):
        read_new({"category": "weather", "description": "x"}, policy)
    with pytest.raises(WorkOrderError, match="description is missing"):
        read_new({"category": "bill", "description": "  "}, policy)
    with pytest.raises(WorkOrderError, match="description is 2001 characters; at most 2000"):
        read_new({"category": "bill", "description": "长" * 2001}, policy)
    new = read_new({"category": "bill", "text": " 扣费有误 ", "contact": ""}, policy)
    assert (new.category, new.description, new.contact) == ("bill", "扣费有误", None)
    with pytest.raises(WorkOrderError, match="special customer 'vip'"):
        Filters(special="vip").checked()


def test_agents_see_their_own_orders_and_their_callers() -> None:
    assert visible_to("agent", "agent1", "8613800000004") == ("(created_by = $1 OR number = $2)",
                                                              ["agent1", "8613800000004"])
    assert visible_to("handler", "h1", None) == ("TRUE", [])


def test_sms_parts_follow_the_alphabet_and_the_concatenation_header() -> None:
    from hotline_core.smstext import sms_parts

    assert [sms_parts("a" * n) for n in (0, 160, 161, 306, 307)] == [1, 1, 2, 2, 3]
    assert [sms_parts("{" * n) for n in (80, 81)] == [1, 2]  # extension characters take two septets
    assert [sms_parts("您" * n) for n in (70, 71, 134, 135)] == [1, 2, 2, 3]
    assert sms_parts("😀" * 35) == 1  # outside the BMP: two UCS-2 units each
    assert sms_parts("😀" * 36) == 2


def test_a_contact_is_the_caller_or_of_an_allowed_kind_and_region(policy: Policy) -> None:
    from hotline.workorders.rules import check_contact

    orders = policy.work_orders
    assert orders is not None
    check_contact("8613800000001", "8613800000009", orders)  # a domestic mobile
    check_contact("19005550100", "19005550100", orders)  # the caller's own number, whatever it is
    with pytest.raises(WorkOrderError, match="premium rate number of US"):
        check_contact("19005550100", "8613800000009", orders)
    with pytest.raises(WorkOrderError, match="fixed line number of CN"):
        check_contact("861065529988", "8613800000009", orders)
