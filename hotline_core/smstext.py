"""How many SMS parts a text takes (pure): what a gateway bills and a handset reassembles.

A text in the GSM 7-bit alphabet fits 160 characters in one SMS, 153 in each part of a longer one
(the rest carries the concatenation header); the extension characters take two. Anything else
(Chinese above all) goes as UCS-2: 70 in one, 67 per part, characters outside the Basic
Multilingual Plane taking two units."""

from __future__ import annotations

import math

_GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿"
    "abcdefghijklmnopqrstuvwxyzäöñüà")
_GSM_EXTENSION = frozenset("^{}\\[~]|€\f")


def sms_parts(text: str) -> int:
    if not text:
        return 1
    if all(c in _GSM_BASIC or c in _GSM_EXTENSION for c in text):
        units, single, each = sum(2 if c in _GSM_EXTENSION else 1 for c in text), 160, 153
    else:
        units, single, each = sum(2 if ord(c) > 0xFFFF else 1 for c in text), 70, 67
    return 1 if units <= single else math.ceil(units / each)
