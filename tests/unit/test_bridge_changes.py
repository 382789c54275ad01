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


def test_the_live_model_follows_events_and_resyncs() -> None:
    from ami_bridge.model import QueueModel

    model = QueueModel()
    model.resync(now=100.0, status=[
        {"Event": "QueueMember", "Queue": "q", "StateInterface": "PJSIP/a", "Penalty": "0", "Status": "1", "Paused": "0"},
        {"Event": "QueueEntry", "Queue": "q", "Uniqueid": "1.1", "CallerIDNum": "138", "Position": "1"},
    ])
    assert model.free_members("q") == ["PJSIP/a"]
    assert model.waiting("q") == 1
    model.apply({"Event": "QueueMemberPause", "Queue": "q", "Interface": "PJSIP/a", "Paused": "1"}, 100.0)
    model.apply({"Event": "QueueMemberAdded", "Queue": "q", "StateInterface": "PJSIP/b", "Penalty": "1", "Status": "2"}, 100.0)
    model.apply({"Event": "QueueCallerLeave", "Queue": "q", "Uniqueid": "1.1"}, 100.0)
    assert model.free_members("q") == []
    assert model.members["q"]["PJSIP/b"].status == "in use"
    assert model.waiting("q") == 0
    model.apply({"Event": "QueueMemberRemoved", "Queue": "q", "StateInterface": "PJSIP/b"}, 100.0)
    assert list(model.members["q"]) == ["PJSIP/a"]
    model.resync(now=100.0, status=[])
    assert model.members == {}


def test_waits_come_from_queue_status_and_from_joins() -> None:
    from ami_bridge.model import QueueModel

    model = QueueModel()
    model.resync([{"Event": "QueueEntry", "Queue": "q", "Uniqueid": "1.1", "Position": "1", "Wait": "30"},
                  {"Event": "QueueMember", "Queue": "q", "StateInterface": "PJSIP/a", "Status": "2", "Paused": "0"},
                  {"Event": "QueueMember", "Queue": "r", "StateInterface": "PJSIP/a", "Status": "2", "Paused": "1"}],
                 now=100.0)
    model.apply({"Event": "QueueCallerJoin", "Queue": "q", "Uniqueid": "1.2", "Position": "2"}, 110.0)
    assert model.longest_wait("q", 120.0) == 50.0  # joined 30 s before the resync at 100
    assert model.longest_wait("empty", 120.0) == 0.0
    assert model.agents() == {"PJSIP/a": ("in use", True)}  # paused in one queue is paused
