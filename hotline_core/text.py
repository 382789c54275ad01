"""What text a database row, an SMS or a log line cannot carry (pure)."""

from __future__ import annotations


def unstorable(text: str) -> str | None:
    """Why `text` cannot be stored as it is (a NUL character, which PostgreSQL's text refuses, or a
    lone surrogate, which no UTF-8 can encode), or None when it can."""
    if "\x00" in text:
        return "a NUL character"
    if any(0xD800 <= ord(c) <= 0xDFFF for c in text):
        return "a lone surrogate"
    return None
