"""The pure parts of the local stack: SIPp caller scenarios and the `make call` summary."""

import pytest

from harness.devstack import summarise
from harness.sipp import caller_scenario


def test_info_digits_become_info_requests() -> None:
    xml = caller_scenario("12", "info", wait_ms=500, talk_ms=2000, gap_ms=1500)
    assert '<pause milliseconds="1500"/>' in xml
    assert xml.count("INFO sip:") == 2
    assert "Signal=1" in xml
    assert "Signal=2" in xml
    assert "CSeq: 4 BYE" in xml
    assert '<pause milliseconds="2000"/>' in xml


def test_rfc4733_digits_replay_recorded_packets() -> None:
    xml = caller_scenario("9", "rfc4733", wait_ms=500, talk_ms=100)
    assert "dtmf_2833_9.pcap" in xml
    with pytest.raises(ValueError, match="0-9"):
        caller_scenario("#", "rfc4733", 0, 0)
    with pytest.raises(ValueError, match="dtmf must be"):
        caller_scenario("1", "inband", 0, 0)


def test_summary_of_a_call() -> None:
    events = [
        {"Event": "Newchannel", "CallerIDNum": "13800000004", "Uniqueid": "1.1"},
        {"Event": "VarSet", "Uniqueid": "1.1", "Variable": "HOTLINE_TIER", "Value": "rural"},
        {"Event": "VarSet", "Uniqueid": "1.1", "Variable": "QUEUE_PRIO", "Value": "10"},
        {"Event": "VarSet", "Uniqueid": "1.2", "Variable": "HOTLINE_TIER", "Value": "highend"},
        {"Event": "VarSet", "Uniqueid": "1.1", "Variable": "HOTLINE_IVR_RESULT", "Value": "transfer"},
        {"Event": "VarSet", "Uniqueid": "1.1", "Variable": "HOTLINE_SERVICE", "Value": "billing"},
        {"Event": "VarSet", "Uniqueid": "1.1", "Variable": "HOTLINE_IVR_PATH", "Value": "main_menu>billing"},
        {"Event": "QueueCallerJoin", "Uniqueid": "1.1", "Queue": "hotline"},
        {"Event": "AgentConnect", "Uniqueid": "1.1", "MemberName": "agent2", "HoldTime": "3"},
    ]
    text = summarise("13800000004", events, 4.2, 0)
    assert "tier:           rural" in text
    assert "queue priority: 10" in text
    assert "answered by:    agent2 after 3 s in queue" in text
    assert "IVR:            transfer billing via main_menu>billing" in text
    assert "no call from 13900000000" in summarise("13900000000", events, 1.0, 1)
