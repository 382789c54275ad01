import pytest

from hotline_core.numbers import mask_digits_in, mask_number, normalize_number


@pytest.mark.parametrize(
    "raw",
    ["+86 138 0013 8000", "008613800138000", "8613800138000", "13800138000", " 138-0013-8000 ", "+86(138)00138000"],
)
def test_every_spelling_of_a_mobile_number_is_one_subscriber(raw: str) -> None:
    assert normalize_number(raw) == "8613800138000"


@pytest.mark.parametrize("raw", ["", "anonymous", "Anonymous", "unknown", "Restricted", "private", "withheld"])
def test_withheld_caller_ids_are_no_number(raw: str) -> None:
    assert normalize_number(raw) is None


@pytest.mark.parametrize("raw", ["abc", "12345", "+", "00", "1380013800", "138001380001234567", "１３８００１３８０００", "13800138000x"])
def test_garbage_is_no_number(raw: str) -> None:
    assert normalize_number(raw) is None


def test_landline_and_foreign_numbers_normalise_through_libphonenumber() -> None:
    assert normalize_number("0791-88888888") == "8679188888888"
    assert normalize_number("+86 791 8888 8888") == "8679188888888"
    assert normalize_number("+1 650 253 0000") == "16502530000"


def test_masking_keeps_only_prefix_and_last_four() -> None:
    assert mask_number("8613800138000") == "86138****8000"
    assert mask_number("123") == "***"
    assert mask_digits_in("caller 8613800138000 pressed 1") == "caller 86138****8000 pressed 1"
