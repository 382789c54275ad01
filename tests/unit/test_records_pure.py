"""The pure parts of the call records: queue_log parsing, a call's queue outcome, the report's
formulas, the story's key names, and exports that cannot turn data into formulas."""

from __future__ import annotations

import csv
import io
import json
from datetime import date

import pytest
from openpyxl import load_workbook

from hotline.records.facts import BadFact, read_fact
from hotline.records.outcome import summarise
from hotline.records.queue_log import BadLine, QueueLogRow, call_started, parse_chunk, parse_line
from hotline.records.report import COUNTS, ReportError, build_report, figures, overflow_step, parse_by
from hotline_core.export import render, safe_text
from hotline_core.policy import Policy

LINES = (b"1796000002|1796000000.1|hotline-gotone_vip|NONE|ENTERQUEUE||8613800000005|1\n"
         b"1796000005|1796000000.1|hotline-gotone_vip|agent1|CONNECT|3|1796000000.9|2\n"
         b"1796000045|1796000000.1|hotline-gotone_vip|agent1|COMPLETECALLER|3|40|1\n")


def rows(text: str) -> list[QueueLogRow]:
    """Lines written with small times and call ids, for reading: both are taken as seconds after
    the start of 2026-11-30 (a queue_log line must carry a time between 2000 and 2100)."""
    shifted = "".join(f"{1796000000 + int(at)}|{1796000000 + int(call.split('.')[0])}.{call.split('.')[1]}|{rest}"
                      for at, call, rest in (line.split("|", 2) for line in text.splitlines(keepends=True)))
    parsed = parse_chunk(shifted.encode(), 0)
    assert not parsed.bad
    return parsed.rows


def test_a_chunk_split_anywhere_gives_the_same_rows() -> None:
    whole = parse_chunk(LINES, 0).rows
    assert [r.event for r in whole] == ["ENTERQUEUE", "CONNECT", "COMPLETECALLER"]
    for cut in range(len(LINES) + 1):
        first = parse_chunk(LINES[:cut], 0)
        rest = parse_chunk(LINES[first.consumed:], first.consumed)
        assert first.rows + rest.rows == whole, cut
        assert first.consumed + rest.consumed == len(LINES)


def test_fields_and_bad_lines() -> None:
    row = parse_line(b"1796000005|1796000000.1|q|agent1|CONNECT|3|x|2", 100)
    assert isinstance(row, QueueLogRow)
    assert (row.offset, row.at, row.callid, row.agent, row.number(1), row.datum(2), row.datum(9)) == (
        100, 1796000005, "1796000000.1", "agent1", 3, "x", "")
    assert parse_line(b"nonsense", 0) == BadLine(0, "1 fields, queue_log lines have at least 5", "nonsense")
    assert isinstance(parse_line(b"yesterday|1.1|q|a|ENTERQUEUE", 0), BadLine)
    assert isinstance(parse_line(b"1|1.1|q|a|", 0), BadLine)
    assert isinstance(parse_line(b"1|1.1|q|\xff|ENTERQUEUE", 0), BadLine)
    huge = b"1|" + b"x" * 10_000
    parsed = parse_chunk(huge, 0)  # no newline and already too long: skipped, not waited for forever
    assert parsed.consumed == len(huge)
    assert parsed.bad[0].reason.startswith("line longer")


def test_lines_no_database_row_can_hold_are_refused_by_name() -> None:
    def reason(line: bytes) -> str:
        bad = parse_line(line, 7)
        assert isinstance(bad, BadLine)
        return bad.reason

    assert reason(b"1796000005|1796000000.1|q|agent1|CONNECT|3|x\x00y|2") == "a NUL character in field 7"
    assert reason(b"99999999999999|1796000000.1|q|agent1|CONNECT|3|x|2") == (
        "time '99999999999999' is not between 2000-01-01 and 2100-01-01")
    assert reason(b"1796000005|99999999999999.1|q|agent1|CONNECT|3|x|2") == (
        "callid '99999999999999.1' names a time not between 2000-01-01 and 2100-01-01")
    huge = parse_line(b"1796000005|1796000000.1|q|agent1|CONNECT|99999999999999999999|x|2", 0)
    assert isinstance(huge, QueueLogRow)
    assert huge.number(1) is None  # no wait of 3 billion years: unknown rather than an overflow


def test_a_line_read_twice_counts_once() -> None:
    line = "10|1.8|q|NONE|ENTERQUEUE||861|1\n"
    once = summarise(rows(line + "15|1.8|q|agent1|CONNECT|5|x|1\n"))
    twice = summarise(rows(line + line + "15|1.8|q|agent1|CONNECT|5|x|1\n15|1.8|q|agent1|CONNECT|5|x|1\n"))
    assert [(v.outcome, v.wait_s) for v in twice.visits] == [(v.outcome, v.wait_s) for v in once.visits] == [
        ("answered", 5)]


def test_answered_abandoned_released_and_refused_visits() -> None:
    answered = summarise(rows(LINES.decode()), {"agent1": "vip_desk"}.get)
    assert (answered.outcome, answered.wait_s, answered.answering and answered.answering.talk_s) == ("answered", 3, 40)
    assert answered.answering is not None
    assert answered.answering.desk == "vip_desk"
    abandoned = summarise(rows("10|1.2|q|NONE|ENTERQUEUE||861|3\n14|1.2|q|NONE|ABANDON|2|3|4\n"))
    assert (abandoned.outcome, abandoned.wait_s, abandoned.visits[0].position) == ("abandoned", 4, 2)
    released = summarise(rows("10|1.3|q|NONE|ENTERQUEUE||861|1\n310|1.3|q|NONE|EXITWITHTIMEOUT|1|1|300\n"))
    assert (released.outcome, released.visits[0].reason, released.wait_s) == ("released", "timeout", 300)
    refused = summarise(rows("10|1.4|q|NONE|HOTLINE_REFUSED|FULL\n"))
    assert (refused.offered, refused.outcome, refused.visits[0].reason) == (True, "released", "full")
    waiting = summarise(rows("10|1.5|q|NONE|ENTERQUEUE||861|1\n"))
    assert waiting.outcome == "waiting"
    nothing = summarise(rows("10|1.6|q|agent1|CONNECT|3|x|1\n"))  # began before the file did
    assert not nothing.offered


def test_two_queues_are_one_offered_call_and_both_waits_count() -> None:
    both = summarise(rows("10|1.7|a|NONE|ENTERQUEUE||861|1\n40|1.7|a|NONE|EXITWITHTIMEOUT|1|1|30\n"
                          "41|1.7|b|NONE|ENTERQUEUE||861|1\n46|1.7|b|agent2|CONNECT|5|x|1\n"))
    assert (both.offered, len(both.visits), both.outcome, both.wait_s) == (True, 2, "answered", 35)


def test_the_call_time_comes_from_the_uniqueid() -> None:
    assert call_started("1796000000.17") == 1796000000
    assert call_started("pbx1-1796000000.17") == 1796000000
    assert call_started("garbage") is None


def test_facts_that_cannot_be_read_say_why() -> None:
    with pytest.raises(BadFact, match="no uniqueid"):
        read_fact({"kind": "entry"})
    with pytest.raises(BadFact, match="identity is not JSON"):
        read_fact({"kind": "entry", "uniqueid": "1.1", "entered_at": "1", "identity": "{"})
    with pytest.raises(BadFact, match="unknown SMS status"):
        read_fact({"kind": "sms", "uniqueid": "1.1", "sms_status": "lost", "at": "1"})
    with pytest.raises(BadFact, match="unknown kind"):
        read_fact({"kind": "weather", "uniqueid": "1.1"})


def counts(**given: int) -> dict[str, int]:
    return dict.fromkeys(COUNTS, 0) | given


def test_the_formulas(policy: Policy) -> None:
    out = figures(counts(calls=12, offered=10, answered=8, answered_in_sl=6, abandoned=2, short_abandoned=1,
                         wait_sum=80, talk_sum=600, talked=8, overflowed=2), policy, "gotone_vip")
    assert out["answer_rate"] == 0.8
    assert out["service_level"] == 0.6
    assert out["service_level_excl_short"] == round(6 / 9, 4)
    assert (out["asa_s"], out["aht_s"], out["overflow_share"]) == (10.0, 75.0, 0.25)
    assert (out["answer_rate_target"], out["below_target"]) == (0.95, True)
    measured = figures(counts(answered=8, survey_offered=7, surveyed=5, satisfied=4, fcr_decided=6, fcr_resolved=5),
                       policy, None)
    # Satisfaction over surveys answered with a key of the scale; resolution over decided calls.
    assert (measured["surveyed"], measured["csat"], measured["fcr_decided"], measured["fcr"]) == \
        (5, 0.8, 6, round(5 / 6, 4))
    empty = figures(counts(), policy, None)
    assert (empty["answer_rate"], empty["asa_s"], empty["csat"], empty["fcr"]) == (None, None, None, None)
    assert "below_target" not in empty


def test_every_tier_appears_in_a_tier_report(policy: Policy) -> None:
    report = build_report([{"tier": "rural", "day": date(2026, 11, 30), **counts(offered=1)}],
                          ("tier", "day"), policy)
    assert [r["tier"] for r in report] == ["highend", "newsub", "campus", "rural", "normal"]
    assert {r["day"] for r in report} == {"2026-11-30"}
    assert [r["tier_label"] for r in report][:4] == ["中高端", "新入网", "校园", "农村"]
    assert report[3]["offered"] == 1
    assert report[0]["offered"] == 0


def test_the_overflow_step_is_the_group_the_agent_was_reached_through() -> None:
    assert overflow_step(["highend_desk", "general"], "highend_desk", "general") == 0
    assert overflow_step(["highend_desk", "general"], "vip_desk", "general") == 1  # only through "everyone"
    assert overflow_step(["general"], "vip_desk", "general") == 0  # a desk agent is in the general group too
    assert overflow_step([], "vip_desk", "general") is None


def test_by_is_checked() -> None:
    assert parse_by("tier,day") == ("tier", "day")
    for bad in ("weather", "tier,tier", ""):
        with pytest.raises(ReportError):
            parse_by(bad)


def test_exports_keep_chinese_and_never_make_formulas() -> None:
    columns = [("tier_label", "特殊客户"), ("service", "service"), ("offered", "offered")]
    rows = [{"tier_label": "农村", "service": "=HYPERLINK(\"x\")", "offered": 3},
            {"tier_label": "中高端", "service": "@SUM(A1)", "offered": 0}]
    data = render("csv", columns, rows, "t")
    assert data.startswith(b"\xef\xbb\xbf")  # the BOM: Excel reads UTF-8
    read = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert read[1] == ["农村", "'=HYPERLINK(\"x\")", "3"]
    assert read[2][1] == "'@SUM(A1)"
    assert safe_text("-1+1") == "'-1+1"
    sheet = load_workbook(io.BytesIO(render("xlsx", columns, rows, "t"))).active
    assert sheet is not None
    assert [c.value for c in sheet[2]] == ["农村", "=HYPERLINK(\"x\")", 3]
    assert sheet["B2"].data_type == "s"  # text, not a formula
    assert json.loads(render("json", columns, rows, "t"))[0]["tier_label"] == "农村"
    assert "农村" in render("table", columns, rows, "t").decode()


def test_an_xlsx_export_survives_control_characters_the_format_refuses() -> None:
    columns = [("description", "description"), ("note", "note")]
    rows = [{"description": "bell\x07 and escape\x1b here", "note": "tab\tand\nnewline kept"},
            {"description": "ordinary", "note": "\x00\x0b\x0c"}]
    sheet = load_workbook(io.BytesIO(render("xlsx", columns, rows, "orders"))).active
    assert sheet is not None
    assert [c.value for c in sheet[2]] == ["bell\ufffd and escape\ufffd here", "tab\tand\nnewline kept"]
    assert [c.value for c in sheet[3]] == ["ordinary", "\ufffd\ufffd\ufffd"]
    assert render("csv", columns, rows, "orders").decode("utf-8-sig").count("\x07") == 1  # CSV keeps what it can
