"""Call records in Redis: the identity fixed at call entry, findable later by uniqueid or linkedid.

The AMI side (queue events, agent screen, post-call SMS) runs in any `hotline serve` instance,
so the record lives in Redis, not in process memory. Records expire on their own; what must
last goes, as a fact, into the records outbox (a stream the recorder copies into PostgreSQL and
then deletes), in the same write as the record itself.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any, NamedTuple

import orjson

from hotline_core.keys import RedisKeys
from hotline_core.redispipe import Handler, RedisPipe, Script

# The outbox is capped so a hotline without a records database (or one away for days) cannot
# fill Redis: at this many facts (~150 MB) the oldest go; a provincial hotline makes ~60,000
# calls a day, three facts each.
OUTBOX_MAX = 200_000


def fact_fields(kind: str, uniqueid: str, fields: dict[str, str]) -> dict[str, str]:
    """One fact about a call (`entry`, `ivr`, `survey`, `sms`) as the outbox stream holds it."""
    return {"kind": kind, "uniqueid": uniqueid, **fields}


def outbox_fact(kind: str, uniqueid: str, fields: dict[str, str]) -> list[str]:
    """The arguments of the XADD that records one fact (after the stream's key)."""
    flat = [item for pair in fact_fields(kind, uniqueid, fields).items() for item in pair]
    return ["MAXLEN", "~", str(OUTBOX_MAX), "*", *flat]


# A call record's writes in one command. KEYS: the call's hash, its linkedid index, the outbox.
# ARGV: ttl, the uniqueid the linkedid index points to ('' when the call is its own linkedid),
# '1' to add the outbox fact, the outbox cap, the values of RECORD_FIELDS in order, then any
# notes as field, value pairs. The hash gets the notes and the fields (a field wins over a note
# of the same name); the fact is `kind entry` and the same.
RECORD_FIELDS = ("uniqueid", "linkedid", "channel", "identity", "entered_at", "route", "lookup_ms")
_WRITE_RECORD = "local names = {" + ", ".join(f"'{name}'" for name in RECORD_FIELDS) + "}" + """
local hash = {}
for i = 5 + #names, #ARGV do hash[#hash + 1] = ARGV[i] end
for i, name in ipairs(names) do
  hash[#hash + 1] = name
  hash[#hash + 1] = ARGV[4 + i]
end
redis.call('HSET', KEYS[1], unpack(hash))
redis.call('EXPIRE', KEYS[1], ARGV[1])
if ARGV[2] ~= '' then
  redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[1])
end
if ARGV[3] == '1' then
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[4], '*', 'kind', 'entry', unpack(hash))
end
return 1
"""
_RECORD_SCRIPT = Script(_WRITE_RECORD)


_NO_NOTES: Mapping[str, str] = MappingProxyType({})


class CallRecord(NamedTuple):
    """A call's record (a tuple: one is made at every call entry, and a frozen dataclass costs
    several times as much to make)."""

    uniqueid: str
    linkedid: str
    channel: str
    identity: dict[str, Any]
    entered_at: float
    route: str
    lookup_ms: float = 0.0
    # What the call did after entry, added by `CallRecords.annotate` (ivr_path, service, ...).
    notes: Mapping[str, str] = _NO_NOTES

    def to_hash(self) -> dict[str, str]:
        values = (v.decode() if isinstance(v, bytes) else v for v in self.values())
        return {**self.notes, **dict(zip(RECORD_FIELDS, values, strict=True))}

    def values(self) -> tuple[str | bytes, ...]:
        """The values of RECORD_FIELDS as the record's hash holds them (the identity as UTF-8
        JSON: Redis takes bytes, and a text copy would be encoded straight back)."""
        # orjson: the same JSON as json.dumps(ensure_ascii=False), at a fifth of the cost (this
        # runs at every call entry).
        return (self.uniqueid, self.linkedid, self.channel, orjson.dumps(self.identity),
                f"{self.entered_at:.3f}", self.route, f"{self.lookup_ms:.2f}")

    @classmethod
    def from_hash(cls, data: dict[str, str]) -> CallRecord:
        return cls(
            uniqueid=data["uniqueid"],
            linkedid=data.get("linkedid", data["uniqueid"]),
            channel=data.get("channel", ""),
            identity=json.loads(data.get("identity", "{}")),
            entered_at=float(data.get("entered_at", "0")),
            route=data.get("route", ""),
            lookup_ms=float(data.get("lookup_ms", "0")),
            notes={k: v for k, v in data.items() if k not in RECORD_FIELDS},
        )


class CallRecords:
    """Call records over the pipelined call-path connection: writing one costs no round trip
    of its own, it rides in the same write as other calls' commands."""

    def __init__(self, pipe: RedisPipe, prefix: str, ttl_s: int, outbox: bool = True):
        self._pipe = pipe
        self._keys = RedisKeys(prefix)
        self._ttl = ttl_s
        self._outbox = outbox  # copy facts to the records outbox (a records database is configured)
        # The record's constant arguments, as text once rather than at every call entry.
        self._ttl_text = str(ttl_s)
        self._outbox_flag = "1" if outbox else ""
        self._outbox_cap = str(OUTBOX_MAX)

    def submit(self, record: CallRecord) -> asyncio.Future[Any]:
        """Send the record now (see `submit_then`); its reply arrives on the returned future."""
        return self._pipe.eval_nowait(_RECORD_SCRIPT, *self._write_arguments(record))

    def submit_then(self, record: CallRecord, handler: Handler) -> None:
        """Send the record now, as one command (the hash, its expiry, the linkedid index and the
        outbox fact in one script: one reply to wait for at every call entry, not four);
        `handler` gets its reply, or the exception it failed with (see RedisPipe.execute_then)."""
        self._pipe.eval_then(_RECORD_SCRIPT, handler, *self._write_arguments(record))

    def submit_entry_then(self, uniqueid: str, linkedid: str, channel: str, identity_json: bytes, entered_at: float,
                          route: str, lookup_ms: float, handler: Handler) -> None:
        """`submit_then` for a call entry's record, its identity already JSON (see
        Identity.json_bytes): at every call entry, no CallRecord nor identity dict is made
        only to be written out."""
        values = (uniqueid, linkedid, channel, identity_json, f"{entered_at:.3f}", route, f"{lookup_ms:.2f}")
        self._pipe.eval_then(_RECORD_SCRIPT, handler, *self._arguments(uniqueid, linkedid, values, ()))

    def _write_arguments(self, record: CallRecord) -> tuple[str | bytes, ...]:
        notes = [item for pair in record.notes.items() for item in pair] if record.notes else ()
        return self._arguments(record.uniqueid, record.linkedid, record.values(), notes)

    def _arguments(self, uniqueid: str, linkedid: str, values: tuple[str | bytes, ...],
                   notes: Sequence[str]) -> tuple[str | bytes, ...]:
        keys = self._keys
        linked = linkedid and linkedid != uniqueid
        return ("3", keys.call(uniqueid), keys.call_by_linkedid(linkedid or uniqueid), keys.records_outbox,
                self._ttl_text, uniqueid if linked else "", self._outbox_flag, self._outbox_cap, *values, *notes)

    async def write(self, record: CallRecord) -> None:
        await self.submit(record)

    async def annotate(self, uniqueid: str, fields: dict[str, str], kind: str = "ivr") -> None:
        """Add what the call did later (IVR path and outcome: `ivr`; the survey's answer:
        `survey`) to its record, and to the outbox as a fact of that kind."""
        flat = [item for pair in fields.items() for item in pair]
        writes = [self._pipe.execute("HSET", self._keys.call(uniqueid), *flat)]
        if self._outbox:
            writes.append(self._pipe.execute("XADD", self._keys.records_outbox, *outbox_fact(kind, uniqueid, fields)))
        await asyncio.gather(*writes)

    async def get(self, uniqueid: str) -> CallRecord | None:
        flat = await self._pipe.execute("HGETALL", self._keys.call(uniqueid))
        return CallRecord.from_hash(dict(zip(flat[::2], flat[1::2], strict=True))) if flat else None

    async def by_linkedid(self, linkedid: str) -> CallRecord | None:
        uniqueid = await self._pipe.execute("GET", self._keys.call_by_linkedid(linkedid))
        return await self.get(uniqueid if isinstance(uniqueid, str) else linkedid)

