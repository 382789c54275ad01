"""Facts about calls as the records outbox carries them, turned into database rows (pure).

`entry` is hotline's decision at call entry (the call record's hash), `ivr` what the IVR did,
`sms` what became of the call's SMS. A fact that cannot be read is reported, not guessed at.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from hotline.records.queue_log import INT4, call_started
from hotline_core.survey import ANSWERED, RESULTS
from hotline_core.text import unstorable

# A status only moves forward; the database applies the same order (see store.SMS_RANK).
SMS_RANK = {"queued": 0, "retrying": 1, "sent": 2, "smsc_ack": 3, "buffered": 3, "delivered": 4, "failed": 4,
            "dead": 4}


class BadFact(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class EntryRow:
    started_at: datetime
    call_id: str
    linkedid: str
    number: str | None
    tier: str
    tier_label: str
    brand: str
    level: str
    queue_priority: int | None
    skill_chain: list[str]
    closed_desks: list[str]
    access_rule: str
    matched: list[str]
    degraded: bool
    lookup_ms: float
    entered_at: datetime
    route: str
    identity: str  # JSON text


@dataclass(frozen=True, slots=True)
class IvrRow:
    started_at: datetime
    call_id: str
    ivr_result: str
    ivr_path: str
    digits: str
    service: str
    flow_version: str


@dataclass(frozen=True, slots=True)
class SmsRow:
    started_at: datetime
    call_id: str
    status: str
    at: datetime


@dataclass(frozen=True, slots=True)
class SurveyRow:
    started_at: datetime
    call_id: str
    result: str  # hotline_core.survey.RESULTS
    key: str | None  # the key pressed, when on the scale
    label: str | None
    satisfied: bool | None  # None unless answered
    agent: str  # who answered the call (the survey rates them)
    at: datetime


Fact = EntryRow | IvrRow | SmsRow | SurveyRow


def _epoch(value: str, what: str) -> datetime:
    try:
        return datetime.fromtimestamp(float(value), UTC)
    except (ValueError, OverflowError, OSError):
        raise BadFact(f"{what} {value[:40]!r} is not epoch seconds") from None


def _started(call_id: str, fallback: datetime | None) -> datetime:
    stamp = call_started(call_id)
    if stamp is not None:
        try:
            return datetime.fromtimestamp(stamp, UTC)
        except (ValueError, OverflowError, OSError):
            raise BadFact(f"uniqueid {call_id[:60]!r} names no possible time") from None
    if fallback is None:
        raise BadFact(f"uniqueid {call_id[:60]!r} names no channel creation time")
    return fallback


MAX_FIELD_CHARS = 65_536  # an identity is a few hundred characters; anything this long is not one


def _checked(fields: Mapping[str, str]) -> None:
    """What no database row can hold, said by field: NUL characters, lone surrogates, sizes."""
    for name, value in fields.items():
        text = str(value)
        why = unstorable(text)
        if why:
            raise BadFact(f"{why} in {str(name)[:40]}")
        if len(text) > MAX_FIELD_CHARS:
            raise BadFact(f"{str(name)[:40]} is {len(text)} characters; at most {MAX_FIELD_CHARS}")


OLDEST_DAYS = 400  # a record of a call older than this (or over a day ahead) names no real call


def sane_window(now: datetime) -> tuple[datetime, datetime]:
    """When a call a record speaks of may have started, seen from `now` (the wall clock): both
    the outbox's facts and queue_log's lines are held to it, so neither a forged uniqueid nor a
    broken clock creates a partition for a far year."""
    return now - timedelta(days=OLDEST_DAYS), now + timedelta(days=1)


def read_fact(fields: Mapping[str, str], window: tuple[datetime, datetime] | None = None) -> Fact:
    """One outbox entry as the row it updates; BadFact says what is wrong with it. With `window`,
    a call said to start outside it (a forged or broken uniqueid: year 3170843) is refused rather
    than given a partition of its own."""
    _checked(fields)
    fact = _read(fields)
    if window is not None and not window[0] <= fact.started_at <= window[1]:
        raise BadFact(f"the call starts at {fact.started_at:%Y-%m-%d %H:%M}, outside "
                      f"{window[0]:%Y-%m-%d} .. {window[1]:%Y-%m-%d}")
    return fact


def _read(fields: Mapping[str, str]) -> Fact:
    kind, call_id = fields.get("kind", ""), fields.get("uniqueid", "")
    if not call_id:
        raise BadFact("no uniqueid")
    if kind == "entry":
        entered = _epoch(fields.get("entered_at", ""), "entered_at")
        try:
            identity: dict[str, Any] = json.loads(fields.get("identity", ""))
        except json.JSONDecodeError as exc:
            raise BadFact(f"identity is not JSON ({exc.msg})") from None
        if not isinstance(identity, dict):
            raise BadFact("identity is not an object")
        priority = identity.get("queue_priority")
        try:
            lookup_ms = float(fields.get("lookup_ms", "0") or 0)
        except ValueError:
            raise BadFact(f"lookup_ms {fields.get('lookup_ms', '')[:20]!r} is not a number") from None
        if isinstance(priority, int) and not -INT4 <= priority <= INT4:
            raise BadFact(f"queue_priority {priority} is out of range")
        return EntryRow(
            started_at=_started(call_id, entered), call_id=call_id, linkedid=fields.get("linkedid") or call_id,
            number=identity.get("number") or None, tier=str(identity.get("tier", "normal")),
            tier_label=str(identity.get("label", "")), brand=str(identity.get("brand", "unknown")),
            level=str(identity.get("level", "")), queue_priority=priority if isinstance(priority, int) else None,
            skill_chain=[str(s) for s in identity.get("skill_chain", [])],
            closed_desks=[str(s) for s in identity.get("closed_desks", [])],
            access_rule=str(identity.get("access_rule", "")), matched=[str(m) for m in identity.get("matched", [])],
            degraded=bool(identity.get("degraded", False)), lookup_ms=lookup_ms,
            entered_at=entered, route=fields.get("route", ""), identity=json.dumps(identity, ensure_ascii=False))
    if kind == "ivr":
        return IvrRow(_started(call_id, None), call_id, fields.get("ivr_outcome", ""), fields.get("ivr_path", ""),
                      fields.get("digits", ""), fields.get("service", ""), fields.get("flow_version", ""))
    if kind == "sms":
        status = fields.get("sms_status", "")
        if status not in SMS_RANK:
            raise BadFact(f"unknown SMS status {status[:20]!r}")
        return SmsRow(_started(call_id, None), call_id, status, _epoch(fields.get("at", ""), "at"))
    if kind == "survey":
        return _survey(call_id, fields)
    raise BadFact(f"unknown kind {kind[:20]!r}")


def _survey(call_id: str, fields: Mapping[str, str]) -> SurveyRow:
    result = fields.get("survey_result", "")
    if result not in RESULTS:
        raise BadFact(f"unknown survey result {result[:20]!r}")
    satisfied = {"1": True, "0": False, "": None}.get(fields.get("survey_satisfied", ""), "bad")
    if satisfied == "bad":
        raise BadFact(f"survey_satisfied {fields.get('survey_satisfied', '')[:10]!r} is not 1, 0 or empty")
    key = fields.get("survey", "")
    if (result == ANSWERED) != bool(key) or (result == ANSWERED) != (satisfied is not None):
        raise BadFact("an answered survey has a key and a satisfied flag, and only an answered one")
    return SurveyRow(_started(call_id, None), call_id, result, key or None, fields.get("survey_label") or None,
                     satisfied if isinstance(satisfied, bool) else None, fields.get("agent", ""),
                     _epoch(fields.get("at", ""), "at"))
