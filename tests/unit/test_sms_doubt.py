"""When an SMS attempt's outcome is unknown, and how long the worker waits for its report."""

from __future__ import annotations

from hotline.sms.worker import in_doubt, retry_delay


def test_an_attempt_with_no_outcome_waits_for_its_report_then_goes_again() -> None:
    state = {"attempts": "1", "attempt_at": "1000.000"}
    assert in_doubt(state, 1000.5, 30.0)
    assert in_doubt(state, 1029.9, 30.0)
    assert not in_doubt(state, 1030.0, 30.0)


def test_a_known_outcome_is_never_in_doubt() -> None:
    for status in ("sent", "smsc_ack", "delivered", "failed", "dead"):
        assert not in_doubt({"status": status, "attempt_at": "1000"}, 1000.1, 30.0)
    # A retry after a recorded failure: that attempt failed, nothing to wait for.
    assert not in_doubt({"status": "retrying", "attempt_at": "1000.000", "failed_at": "1000.200"}, 1001, 30.0)
    # A job never attempted (a worker died before sending) goes at once.
    assert not in_doubt({}, 1000, 30.0)


def test_a_retry_whose_own_outcome_was_lost_is_in_doubt_again() -> None:
    state = {"status": "retrying", "failed_at": "1000.200", "attempt_at": "1004.000"}
    assert in_doubt(state, 1005, 30.0)


def test_retries_double_up_to_the_cap() -> None:
    assert [retry_delay(n, 2.0) for n in (1, 2, 3, 4)] == [2.0, 4.0, 8.0, 16.0]
    assert retry_delay(20, 2.0) == 300.0
