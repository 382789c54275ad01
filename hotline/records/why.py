"""Why this caller waited: the whole routing story of one call, from its durable record."""

from __future__ import annotations

import json
from datetime import datetime, tzinfo
from typing import Any

from hotline.records.queue_log import call_started
from hotline.records.report import overflow_step
from hotline_core.db import Conn

_CALL = """
SELECT c.*, d.identity FROM calls c
LEFT JOIN call_details d ON d.started_at = c.started_at AND d.call_id = c.call_id
WHERE {where} ORDER BY c.started_at DESC, c.call_id DESC LIMIT 1
"""


async def find_call(conn: Conn, key: str, number: str | None) -> dict[str, Any] | None:
    """The call with this linkedid (or uniqueid); else the last call of this number."""
    row = await conn.fetchrow(_CALL.format(where="c.linkedid = $1"), key)
    stamp = call_started(key)
    if row is None and stamp is not None:  # a uniqueid: its time finds the partition and the row
        row = await conn.fetchrow(_CALL.format(where="c.started_at = to_timestamp($1) AND c.call_id = $2"),
                                  float(stamp), key)
    if row is None and number:
        row = await conn.fetchrow(_CALL.format(where="c.number = $1"), number)
    if row is None:
        return None
    call = dict(row)
    call["identity"] = json.loads(call["identity"]) if call.get("identity") else {}
    call["visits"] = [dict(v) for v in await conn.fetch(
        "SELECT * FROM queue_visits WHERE started_at = $1 AND call_id = $2 ORDER BY visit",
        call["started_at"], call["call_id"])]
    call["queue_log"] = [dict(r) for r in await conn.fetch(
        "SELECT at, queue, agent, event, data FROM queue_log WHERE callid = $1 "
        "ORDER BY at, source, file_key, line_offset", call["call_id"])]
    return call


def story_json(call: dict[str, Any], zone: tzinfo, everyone: str = "general") -> dict[str, Any]:
    """The call as one JSON object (pure), times in the operator's zone; tools rely on the
    first keys' names."""

    def _iso(value: datetime | None) -> str | None:
        return value.astimezone(zone).isoformat() if value else None

    identity = call["identity"]
    return {
        "linkedid": call["linkedid"] or call["call_id"],
        "uniqueid": call["call_id"],
        "number": call["number"],
        "tier": call["tier"] or "normal",
        "tier_label": call["tier_label"],
        "brand": call["brand"],
        "level": call["level"],
        "queue_priority": call["queue_priority"],
        "ivr_path": call["ivr_path"],
        "digits": call["digits"],
        "service": call["service"],
        "queue": call["queue"],
        "outcome": call["outcome"],
        "agent": call["agent"],
        "desk": call["desk"],
        "overflow_step": overflow_step(call["skill_chain"] or [], call["desk"], everyone) if call["agent"] else None,
        "wait_s": call["wait_s"],
        "talk_s": call["talk_s"],
        "sms": call["sms_status"],
        "survey": call["survey"],
        "survey_label": call["survey_label"],
        "survey_result": call["survey_result"],
        "fcr": call["fcr"],
        "started_at": _iso(call["started_at"]),
        "degraded": call["degraded"],
        "lookup_ms": call["lookup_ms"],
        "matched": identity.get("matched", call["matched"] or []),
        "rows": identity.get("rows", {}),
        "access_rule": call["access_rule"],
        "skill_chain": call["skill_chain"],
        "closed_desks": call["closed_desks"],
        "flow_version": call["flow_version"],
        "end_reason": call["end_reason"],
        "visits": [{"queue": v["queue"], "entered_at": _iso(v["entered_at"]), "position": v["position"],
                    "outcome": v["outcome"], "wait_s": v["wait_s"], "talk_s": v["talk_s"], "agent": v["agent"],
                    "desk": v["desk"], "reason": v["reason"]} for v in call["visits"]],
        "queue_log": [f"{int(r['at'].timestamp())}|{r['queue']}|{r['agent']}|{r['event']}|{'|'.join(r['data'])}"
                      for r in call["queue_log"]],
    }


def story_text(story: dict[str, Any], precedence: tuple[str, ...]) -> str:
    """The same story in sentences for a person at a terminal (pure)."""
    lines = [f"call {story['linkedid']} from {story['number'] or '(withheld)'} at {story['started_at']}"]
    if story["tier"] is None or story["level"] is None:
        lines.append("  lookup:   no decision on record (the bridge was down: the dialplan's fallback served it)")
    else:
        matched = ", ".join(story["matched"]) or "no table"
        lines.append(f"  lookup:   in {matched}; precedence {' > '.join(precedence)} gives "
                     f"{story['tier']} {story['tier_label'] or ''}"
                     + (" [DEGRADED: Redis unavailable, served as normal]" if story["degraded"] else "")
                     + (f" ({story['lookup_ms']:.1f} ms)" if story["lookup_ms"] is not None else ""))
        for table, row in story["rows"].items():
            values = ", ".join(f"{k}={v}" for k, v in row.items()) or "(no columns)"
            lines.append(f"            {table}: {values}")
        lines.append(f"  access:   {story['access_rule'] or '-'} -> level {story['level']}, "
                     f"QUEUE_PRIO {story['queue_priority']}")
        closed = f" (closed this month: {', '.join(story['closed_desks'])})" if story["closed_desks"] else ""
        lines.append(f"  chain:    {' > '.join(story['skill_chain'] or [])}{closed}")
    if story["ivr_path"]:
        lines.append(f"  IVR:      {story['ivr_path']} pressing {story['digits'] or 'nothing'} "
                     f"-> {story['service'] or '-'} (flow {story['flow_version']})")
    for visit in story["visits"]:
        who = f" by {visit['agent']} at {visit['desk'] or '?'}" if visit["agent"] else ""
        lines.append(f"  queue:    {visit['queue']} at {visit['entered_at']}, position {visit['position']}: "
                     f"{visit['outcome']}{who} after {visit['wait_s']} s"
                     + (f", talked {visit['talk_s']} s" if visit["talk_s"] is not None else "")
                     + (f" ({visit['reason']})" if visit["reason"] and visit["outcome"] != "answered" else ""))
    if story["overflow_step"]:
        lines.append(f"  overflow: answered through group {story['overflow_step'] + 1} of the chain "
                     f"({story['desk']}), not the caller's first desk")
    lines.append(f"  outcome:  {story['outcome'] or 'in progress'}"
                 + (f", waited {story['wait_s']} s" if story["wait_s"] is not None else ""))
    if story["survey_result"]:
        answer = (f"pressed {story['survey']} ({story['survey_label']})" if story["survey"]
                  else story["survey_result"])
        lines.append(f"  survey:   {answer}")
    if story["fcr"] is not None:
        lines.append(f"  FCR:      {'resolved at first contact' if story['fcr'] else 'not resolved at first contact'}")
    lines.append(f"  SMS:      {story['sms'] or '-'}")
    return "\n".join(lines)
