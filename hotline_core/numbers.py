"""Subscriber number normalisation and masking.

Every number that enters the system (CSV rows, caller IDs, CLI arguments) goes through
`normalize_number`, so a subscriber has one spelling everywhere: E.164 digits without the
plus sign (`8613800138000`). The common Chinese forms take a fast path because the bulk
import handles millions of rows; anything unusual falls back to libphonenumber.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import phonenumbers

# Asterisk and carriers spell a withheld caller ID in many ways; none of them is a subscriber.
_WITHHELD = frozenset(
    {"", "anonymous", "unknown", "unavailable", "private", "restricted", "withheld", "blocked", "asterisk"}
)
_SEPARATORS = re.compile(r"[\s\-().]")
_MOBILE_CN = re.compile(r"1[3-9]\d{9}")
_LONG_DIGITS = re.compile(r"\d{7,}")  # a run of seven or more digits, whole
# libphonenumber's number types by their names, in lower case (`mobile`, `premium_rate`, ...).
_KINDS = {value: name.lower() for name, value in vars(phonenumbers.PhoneNumberType).items()
          if name.isupper() and isinstance(value, int)}


@dataclass(frozen=True, slots=True)
class NumberPlan:
    """How local numbers are read: the operator's country."""

    country_code: str = "86"
    region: str = "CN"


DEFAULT_PLAN = NumberPlan()


def normalize_number(raw: str, plan: NumberPlan = DEFAULT_PLAN) -> str | None:
    """Return the E.164 digits (no '+') for `raw`, or None when it is not a usable number.

    None covers withheld caller IDs and garbage alike: the caller is then treated as an
    unidentified (normal) caller and the tier tables are never consulted.
    """
    text = raw.strip()
    # Fast path for the bulk of real data: a bare 11-digit mainland mobile number.
    china = plan.region == "CN"
    if china and len(text) == 11 and text.isdigit() and text.isascii() and text[0] == "1" and text[1] in "3456789":
        return plan.country_code + text
    if text.lower() in _WITHHELD:
        return None
    text = _SEPARATORS.sub("", text)
    if not text:
        return None
    if text.startswith("+"):
        digits = text[1:]
        international = True
    elif text.startswith("00"):
        digits = text[2:]
        international = True
    else:
        digits = text
        international = False
    if not digits.isascii() or not digits.isdigit():
        return None
    cc = plan.country_code
    if international or (digits.startswith(cc) and len(digits) > 11):
        if china and digits.startswith(cc) and _MOBILE_CN.fullmatch(digits[len(cc) :]):
            return digits
        return _slow_path("+" + digits, plan)
    if china and _MOBILE_CN.fullmatch(digits):
        return cc + digits
    return _slow_path(digits, plan)


def number_kind(number: str) -> tuple[str, str]:
    """The region (ISO code, `001` for numbers of no country such as satellite phones) and the
    kind (`mobile`, `fixed_line`, `fixed_line_or_mobile`, `premium_rate`, `toll_free`, `voip`,
    ...; `unknown`) of a normalised number."""
    try:
        parsed = phonenumbers.parse("+" + number)
    except phonenumbers.NumberParseException:
        return "", "unknown"
    region = phonenumbers.region_code_for_number(parsed) or ""
    return region, _KINDS.get(phonenumbers.number_type(parsed), "unknown")


def _slow_path(text: str, plan: NumberPlan) -> str | None:
    try:
        parsed = phonenumbers.parse(text, plan.region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(parsed):
        return None
    return f"{parsed.country_code}{parsed.national_number}"


def mask_number(number: str) -> str:
    """Hide the middle of a number for logs: `8613800138000` -> `86138****8000`."""
    if len(number) <= 4:
        return "*" * len(number)
    if len(number) <= 8:
        return "*" * (len(number) - 2) + number[-2:]
    return number[: len(number) - 8] + "****" + number[-4:]


def mask_caller(text: str, cap: int = 40) -> str:
    """A caller id as a log may show it: its digits masked whatever the punctuation between them
    (`+86 138 0000 0004` -> `86138****0004`), anything else around them dropped and said so, and
    never longer than `cap` (a caller id is the peer's to choose)."""
    if text.isascii() and text.isdigit():  # the usual caller id: skip the character walks
        return mask_number(text[-20:]) if len(text) >= 5 else mask_digits_in(text)
    digits = "".join(ch for ch in text if ch.isdigit())
    if len(digits) >= 5:
        others = any(not (ch.isdigit() or ch in "+-() ") for ch in text)
        return mask_number(digits[-20:]) + (" (+other characters)" if others else "")
    shown = mask_digits_in(text[:cap])
    return shown + (f"…({len(text)} chars)" if len(text) > cap else "")


def mask_digits_in(text: str) -> str:
    """Mask every run of seven or more digits inside free text (a log line's last safety net)."""
    # Most text has no such run: a search alone costs less than a substitution that finds none.
    return _LONG_DIGITS.sub(_mask_match, text) if _LONG_DIGITS.search(text) else text


def _mask_match(match: re.Match[str]) -> str:
    return mask_number(match.group())
