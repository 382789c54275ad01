"""CSV parsing and every bad-input case, by value (no Redis)."""

from io import BytesIO

import pytest

from hotline_core.policy import Policy
from tests.conftest import row_context
from tier_lookup.csvfile import ParsedTable, TableReader, parse_table, read_file
from tier_lookup.tables import TABLES, parse_activation


def parse(policy: Policy, table: str, text: str | bytes, buckets: int = 4, encoding: str = "utf-8") -> ParsedTable:
    data = text.encode("utf-8") if isinstance(text, str) else text
    return parse_table(data, TABLES[table], row_context(policy), buckets, encoding)


def all_rows(parsed: ParsedTable) -> dict[str, str]:
    return {n: v for bucket in parsed.buckets for n, v in bucket.items()}


def reasons(parsed: ParsedTable) -> dict[int, str]:
    return {e.line: e.reason for e in parsed.errors}


def test_good_file_with_attributes_and_normalised_numbers(policy: Policy) -> None:
    parsed = parse(policy, "rural", "number,name,station\n13800000001,王,石门站\n+86 138 0000 0002,李,\n")
    assert parsed.columns == ("number", "name", "station")
    assert all_rows(parsed) == {"8613800000001": "王\x1f石门站", "8613800000002": "李\x1f"}
    assert (parsed.rows_read, parsed.rejected, parsed.header_error) == (2, 0, None)


def test_rows_land_in_their_bucket(policy: Policy) -> None:
    parsed = parse(policy, "campus", "number\n13800000001\n13800000002\n13800000003\n", buckets=3)
    for index, bucket in enumerate(parsed.buckets):
        for number in bucket:
            assert int(number[-6:]) % 3 == index


def test_invalid_number_is_rejected_with_its_line(policy: Policy) -> None:
    parsed = parse(policy, "highend", "number,arpu\n13800000001,400\nnot-a-number,500\n12345,380\n")
    assert reasons(parsed) == {
        3: "number: 'not-a-number' is not a valid subscriber number",
        4: "number: '12345' is not a valid subscriber number",
    }
    assert len(all_rows(parsed)) == 1


def test_missing_required_column_refuses_the_header(policy: Policy) -> None:
    parsed = parse(policy, "newsub", "number,activated\n13800000001,2026-11-01\n")
    assert parsed.header_error is not None
    assert parsed.header_error.line == 1
    assert "required column 'activated_at' is missing" in parsed.header_error.reason


def test_duplicate_header_and_empty_file(policy: Policy) -> None:
    assert "appears twice" in parse(policy, "highend", "number,arpu,arpu\n").header_error.reason  # type: ignore[union-attr]
    assert "empty" in parse(policy, "highend", "").header_error.reason  # type: ignore[union-attr]


def test_unparsable_date(policy: Policy) -> None:
    parsed = parse(policy, "newsub", "number,activated_at\n13800000001,2026-13-45\n13800000002,yesterday\n")
    assert set(reasons(parsed)) == {2, 3}
    assert all("activated_at:" in r and "not a date" in r for r in reasons(parsed).values())


def test_activation_formats(policy: Policy) -> None:
    zone = policy.zone
    assert parse_activation("2026-11-01", zone) == parse_activation("2026-11-01T00:00:00+08:00", zone)
    assert parse_activation("20261101", zone) == parse_activation("2026-11-01", zone)
    assert parse_activation("2026-11-01 09:30:00", zone) == parse_activation("2026-11-01T01:30:00Z", zone)
    assert parse_activation("20261101093000", zone) == parse_activation("2026-11-01T09:30:00", zone)


def test_duplicates_identical_are_merged_conflicting_are_rejected(policy: Policy) -> None:
    text = "number,name\n13800000001,王\n138 0000 0001,王\n+8613800000001,张\n13800000002,李\n"
    parsed = parse(policy, "rural", text)
    assert parsed.duplicates == 1
    assert reasons(parsed) == {4: "number 8613800000001 already appears on line 2 with different data"}
    assert all_rows(parsed)["8613800000001"] == "王"
    assert parsed.rows_read == 4


def test_wrong_encoding_is_pinned_to_its_line(policy: Policy) -> None:
    data = "number,name\n13800000001,王\n".encode() + "13800000002,李\n".encode("gbk")
    parsed = parse(policy, "rural", data)
    assert list(reasons(parsed)) == [3]
    assert "not valid utf-8 text" in reasons(parsed)[3]
    assert "--encoding" in reasons(parsed)[3]
    assert list(all_rows(parsed)) == ["8613800000001"]


def test_gbk_file_with_encoding_option(policy: Policy) -> None:
    data = "number,name\n13800000001,王\n".encode("gbk")
    parsed = parse(policy, "rural", data, encoding="gbk")
    assert all_rows(parsed) == {"8613800000001": "王"}


def test_utf8_bom_is_accepted(policy: Policy) -> None:
    parsed = parse(policy, "highend", "\ufeffnumber,arpu\n13800000001,400\n")
    assert parsed.header_error is None
    assert len(all_rows(parsed)) == 1


def test_truncated_last_row(policy: Policy) -> None:
    parsed = parse(policy, "rural", "number,name,station\n13800000001,王,石门站\n13800000002,李")
    assert reasons(parsed) == {3: "expected 3 fields, found 2 (the last line has no line end: is the file truncated?)"}


def test_truncated_inside_a_quoted_field(policy: Policy) -> None:
    parsed = parse(policy, "rural", 'number,name\n13800000001,王\n13800000002,"李')
    assert parsed.rejected == 1
    assert "truncated" in parsed.errors[0].reason


def test_missing_required_value_and_control_characters(policy: Policy) -> None:
    parsed = parse(policy, "rural", "number,name\n13800000001,\n13800000002,a\x07b\n13800000003,好\n")
    assert reasons(parsed) == {2: "name: required value is empty", 3: reasons(parsed)[3]}
    assert "control character" in reasons(parsed)[3]


def test_brand_codes_and_labels(policy: Policy) -> None:
    parsed = parse(policy, "brand", "number,brand\n13800000001,GoTone\n13800000002,动感地带\n13800000003,unicom\n")
    assert all_rows(parsed) == {"8613800000001": "gotone", "8613800000002": "mzone"}
    assert "brand: 'unicom' is not a known brand" in reasons(parsed)[4]


@pytest.mark.parametrize("line", ["13800000001,1,2", "13800000001"])
def test_wrong_field_count(policy: Policy, line: str) -> None:
    parsed = parse(policy, "highend", f"number,arpu\n{line}\n")
    assert "fields, found" in reasons(parsed)[2]


def test_huge_line_is_rejected_not_stored(policy: Policy) -> None:
    parsed = parse(policy, "highend", "number,arpu\n13800000001," + "9" * 5000 + "\n13800000002,1\n")
    assert "longer than" in reasons(parsed)[2]
    assert list(all_rows(parsed)) == ["8613800000002"]


def test_error_list_is_capped_but_count_is_exact(policy: Policy) -> None:
    parsed = parse(policy, "highend", "number\n" + "bad\n" * 1500)
    assert parsed.rejected == 1500
    assert len(parsed.errors) == 1000


def test_a_utf8_file_imported_as_gbk_is_refused_not_garbled(policy: Policy) -> None:
    data = "number,name\n13800000001,王\n".encode()
    parsed = parse_table(data, TABLES["rural"], row_context(policy), 1, "gbk")
    assert parsed.header_error is not None
    assert parsed.header_error.reason == ("the file is UTF-8 (line 2 has '王'), not gbk: importing it as gbk would "
                                          "store garbled text; leave out --encoding")
    assert not parsed.buckets[0]


def test_a_repeat_is_counted_whatever_the_value_is(policy: Policy) -> None:
    """One-character values are one shared object in CPython: a repeat of `13800000001,5` must
    still count as a row read and an identical duplicate (it once went uncounted)."""
    parsed = parse(policy, "highend", "number,arpu\n13800000001,5\n13800000001,5\n13800000002,5\n")
    assert (parsed.rows_read, parsed.duplicates, parsed.row_count) == (3, 1, 2)


def test_a_file_of_many_blocks_reads_as_one(policy: Policy) -> None:
    """Blocks cut at line ends: line numbers, repeats and a truncated last line come out as
    for one whole read."""
    body = "".join(f"{13_800_000_000 + i},{400 + i % 3}\n" for i in range(2000))
    text = "number,arpu\n" + body + "13800000007,999\n1380000"  # a conflict, then a cut line
    reader = TableReader(TABLES["highend"], row_context(policy))
    rows = [row for block in read_file(reader, BytesIO(text.encode()), size=1000) for row in block]
    assert len(rows) == 2001
    assert rows[0] == (2, "8613800000000", "400")
    assert rows[-1] == (2002, "8613800000007", "999")
    assert [(e.line, "truncated" in e.reason) for e in reader.result.errors] == [(2003, True)]
    whole = parse(policy, "highend", text)
    assert reasons(whole) == {2002: "number 8613800000007 already appears on line 9 with different data",
                              2003: reader.result.errors[0].reason}
