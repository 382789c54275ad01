"""The AMI bridge's decisions, by value: what to send to make Asterisk's queues match the desks."""

from ami_bridge.bridge import Change, changes, read_members


def test_add_repenalise_and_remove_but_never_touch_static_members() -> None:
    desired = {"q1": {"PJSIP/a": 0, "PJSIP/b": 1}, "q2": {"PJSIP/a": 0}}
    actual = {"q1": {"PJSIP/b": 0, "PJSIP/old": 0, "PJSIP/fixed": 0}, "q3": {"PJSIP/x": 0}}
    todo = changes(desired, actual, static={("q1", "PJSIP/fixed")})
    assert todo == [
        Change("QueueAdd", "q1", "PJSIP/a", 0),
        Change("QueuePenalty", "q1", "PJSIP/b", 1),
        Change("QueueRemove", "q1", "PJSIP/old"),
        Change("QueueAdd", "q2", "PJSIP/a", 0),
    ]  # q3 is not a level queue: left alone
    assert changes(desired, {"q1": {"PJSIP/a": 0, "PJSIP/b": 1}, "q2": {"PJSIP/a": 0}}, set()) == []


def test_actions_carry_what_asterisk_needs() -> None:
    assert Change("QueueAdd", "q", "PJSIP/agent1", 2).as_action() == {
        "Action": "QueueAdd", "Queue": "q", "Interface": "PJSIP/agent1", "Penalty": "2", "MemberName": "agent1"}
    assert Change("QueueRemove", "q", "PJSIP/agent1").as_action() == {
        "Action": "QueueRemove", "Queue": "q", "Interface": "PJSIP/agent1"}


def test_reading_queue_status() -> None:
    messages = [
        {"Response": "Success", "EventList": "start"},
        {"Event": "QueueParams", "Queue": "q1"},
        {"Event": "QueueMember", "Queue": "q1", "StateInterface": "PJSIP/a", "Penalty": "1", "Membership": "dynamic"},
        {"Event": "QueueMember", "Queue": "q1", "Location": "PJSIP/b", "Penalty": "0", "Membership": "static"},
        {"Event": "QueueStatusComplete"},
    ]
    members, static = read_members(messages)
    assert members == {"q1": {"PJSIP/a": 1, "PJSIP/b": 0}}
    assert static == {("q1", "PJSIP/b")}
