"""Alarms and the live picture, by value: conditions, the hold before a level alarms, one log
line per episode, agents counted per desk, the terminal's text."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from structlog.testing import capture_logs

from ami_bridge.model import QueueModel
from hotline.monitor.alarms import AlarmBook, Conditions, candidates
from hotline.monitor.snapshot import build_snapshot, status_text
from hotline_core.policy import Policy

NOW = datetime(2026, 11, 30, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai


def conditions(**given: object) -> Conditions:
    base: dict[str, object] = {"service_level_today": {}, "table_imported_at": {"newsub": NOW, "highend": NOW},
                               "ami_up": True, "sms_dead": 0, "entries": 0, "degraded": 0}
    return Conditions(**(base | given))  # type: ignore[arg-type]


def test_each_condition_alarms(policy: Policy) -> None:
    found = candidates(conditions(service_level_today={"gotone_vip": 0.9, "campus": 0.99, "highend_mzone": None},
                                  table_imported_at={"newsub": NOW - timedelta(hours=27), "highend": None},
                                  ami_up=False, sms_dead=3), policy, NOW)
    assert sorted((a.kind, a.subject) for a in found) == [
        ("ami_down", ""), ("feed_late", "highend"), ("feed_late", "newsub"), ("level_below_target", "gotone_vip"),
        ("sms_dead_letters", "")]
    late = next(a for a in found if a.subject == "newsub")
    assert late.message == "tier table newsub last imported 27 h ago (expected within 26 h)"
    assert candidates(conditions(ami_up=None), policy, NOW) == []  # no bridge configured: nothing to say


def test_a_level_alarms_only_after_its_minutes_and_each_episode_is_logged_once(policy: Policy) -> None:
    book = AlarmBook(policy)
    low = conditions(service_level_today={"gotone_vip": 0.5})
    with capture_logs() as logs:
        assert book.update(low, NOW) == []
        assert book.update(low, NOW + timedelta(minutes=14)) == []
        [alarm] = book.update(low, NOW + timedelta(minutes=15))
        book.update(low, NOW + timedelta(minutes=16))
        assert book.update(conditions(), NOW + timedelta(minutes=17)) == []
    assert alarm.kind == "level_below_target"
    assert [(e["event"], e["kind"]) for e in logs] == [("alarm", "level_below_target"),
                                                      ("alarm cleared", "level_below_target")]


def test_degraded_lookups_alarm_on_their_share_over_the_window(policy: Policy) -> None:
    book = AlarmBook(policy)
    assert book.update(conditions(entries=100, degraded=0), NOW) == []
    assert book.update(conditions(entries=200, degraded=2), NOW + timedelta(minutes=1)) == []  # 2%
    [alarm] = book.update(conditions(entries=300, degraded=20), NOW + timedelta(minutes=2))  # 20 of 200: 10%
    assert alarm.kind == "degraded_lookups"
    assert book.update(conditions(entries=2300, degraded=20), NOW + timedelta(minutes=9)) == []  # window moved


def test_a_records_backlog_alarms_long_before_the_outbox_drops_anything(policy: Policy) -> None:
    assert candidates(conditions(outbox=50_000), policy, NOW) == []
    [alarm] = candidates(conditions(outbox=50_001), policy, NOW)
    assert alarm.kind == "records_backlog"
    assert "the outbox keeps at most 200,000" in alarm.message


def test_a_background_component_that_is_down_is_an_alarm_named_after_it(policy: Policy) -> None:
    [alarm] = candidates(conditions(components_down=(("ami bridge", "ami bridge restarting (KeyError: 'name')"),)),
                         policy, NOW)
    assert (alarm.kind, alarm.subject, alarm.message) == ("component_down", "ami bridge",
                                                          "ami bridge restarting (KeyError: 'name')")


def test_unusual_sms_volume_alarms_over_its_window(policy: Policy) -> None:
    book = AlarmBook(policy)  # the shipped policy: more than 500 SMS within 10 minutes
    assert book.update(conditions(sms_added=1000), NOW) == []
    assert book.update(conditions(sms_added=1400), NOW + timedelta(minutes=5)) == []  # 400
    [alarm] = book.update(conditions(sms_added=1600), NOW + timedelta(minutes=8))  # 600 in 8 minutes
    assert (alarm.kind, alarm.message.split(":")[0]) == ("sms_volume", "600 SMS queued in the last 10 min (more than 500)")
    assert book.update(conditions(sms_added=1700), NOW + timedelta(minutes=19)) == []  # the window moved on


def test_the_picture_counts_waiting_callers_and_agents_per_desk(policy: Policy) -> None:
    model = QueueModel()
    epoch = NOW.timestamp()
    model.resync([
        {"Event": "QueueEntry", "Queue": "hotline-gotone_vip", "Uniqueid": "1.1", "Position": "1", "Wait": "40"},
        {"Event": "QueueEntry", "Queue": "hotline-gotone_vip", "Uniqueid": "1.2", "Position": "2", "Wait": "5"},
        {"Event": "QueueMember", "Queue": "hotline-gotone_vip", "StateInterface": "PJSIP/agent1", "Status": "1",
         "Paused": "1"},
        {"Event": "QueueMember", "Queue": "hotline-gotone_vip", "StateInterface": "PJSIP/agent2", "Status": "2",
         "Paused": "0"},
        {"Event": "QueueMember", "Queue": "hotline", "StateInterface": "PJSIP/agent4", "Status": "1", "Paused": "0"},
    ], epoch)
    today = {"gotone_vip": {"offered": 10, "answered": 9, "service_level": 0.8}}
    snap = build_snapshot(policy, model, {"agent1": "vip_desk", "agent2": "highend_desk"}.get, today, [], True, NOW)
    vip = next(line for line in snap.levels if line.level == "gotone_vip")
    assert (vip.waiting, vip.longest_wait_s, vip.offered_today, vip.service_level_today, vip.below) == (
        2, 40, 10, 0.8, True)
    ordinary = next(line for line in snap.levels if line.level == "ordinary_easyown")
    assert (ordinary.offered_today, ordinary.below) == (0, False)
    desks = {d.desk: d for d in snap.desks}
    assert (desks["vip_desk"].paused, desks["highend_desk"].busy) == (1, 1)
    # Each agent once: agent4, at no virtual desk, in general; the desk agents at their desks.
    assert (desks["general"].free, desks["general"].paused, desks["general"].busy) == (1, 0, 0)
    assert sum(d.free + d.busy + d.paused + d.away for d in snap.desks) == len(model.agents()) == 3
    assert (desks["campus_desk"].seasonal, desks["campus_desk"].open_now) == (True, False)  # November
    text = status_text(snap)
    assert "gotone_vip" in text
    assert "BELOW" in text
    assert "closed" in text
    no_records = build_snapshot(policy, model, lambda _a: None, None, [], None, NOW)
    assert no_records.levels[0].offered_today is None
    assert "AMI link not configured" in status_text(no_records)


def test_a_desk_under_the_rules_qualified_share_alarms_while_it_is_open(policy: Policy) -> None:
    found = candidates(conditions(desk_shares=(("vip_desk", 2, 0.5), ("highend_desk", 4, 0.75),
                                               ("campus_desk", 2, 0.0), ("newsub_desk", 0, 0.0))),
                       policy, NOW)  # November: the campus desk is closed
    assert [(a.kind, a.subject) for a in found] == [("desk_rule", "vip_desk"), ("desk_rule", "newsub_desk")]
    assert found[0].message.startswith("全球通VIP席 (vip_desk): 50.0% of its agents qualified, under the desk rule's "
                                       "70.0%")
    assert found[1].message.startswith("新入网优先席 (newsub_desk): no agent seated")
    march = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)
    assert [a.subject for a in candidates(conditions(desk_shares=(("campus_desk", 2, 0.0),)), policy, march)] == [
        "campus_desk"]
