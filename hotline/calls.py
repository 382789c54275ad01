"""Call records in Redis: the identity fixed at call entry, findable later by uniqueid or linkedid.

The AMI side (queue events, agent screen, post-call SMS) runs in any `hotline serve` instance,
so the record lives in Redis, not in process memory. Records expire on their own.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis


@dataclass(frozen=True, slots=True)
class CallRecord:
    uniqueid: str
    linkedid: str
    channel: str
    identity: dict[str, Any]
    entered_at: float
    route: str

    def to_hash(self) -> dict[str, str]:
        return {
            "uniqueid": self.uniqueid,
            "linkedid": self.linkedid,
            "channel": self.channel,
            "identity": json.dumps(self.identity, ensure_ascii=False),
            "entered_at": f"{self.entered_at:.3f}",
            "route": self.route,
        }

    @classmethod
    def from_hash(cls, data: dict[str, str]) -> CallRecord:
        return cls(
            uniqueid=data["uniqueid"],
            linkedid=data.get("linkedid", data["uniqueid"]),
            channel=data.get("channel", ""),
            identity=json.loads(data.get("identity", "{}")),
            entered_at=float(data.get("entered_at", "0")),
            route=data.get("route", ""),
        )


class CallRecords:
    def __init__(self, redis: Redis, prefix: str, ttl_s: int):
        self._redis = redis
        self._prefix = prefix
        self._ttl = ttl_s

    def _key(self, uniqueid: str) -> str:
        return f"{self._prefix}:call:{uniqueid}"

    def _linked_key(self, linkedid: str) -> str:
        return f"{self._prefix}:call:linked:{linkedid}"

    async def write(self, record: CallRecord) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hset(self._key(record.uniqueid), mapping=record.to_hash())  # type: ignore[arg-type]
            pipe.expire(self._key(record.uniqueid), self._ttl)
            if record.linkedid and record.linkedid != record.uniqueid:
                pipe.set(self._linked_key(record.linkedid), record.uniqueid, ex=self._ttl)
            await pipe.execute()

    async def get(self, uniqueid: str) -> CallRecord | None:
        data = await self._redis.hgetall(self._key(uniqueid))
        return CallRecord.from_hash(data) if data else None  # type: ignore[arg-type]

    async def by_linkedid(self, linkedid: str) -> CallRecord | None:
        uniqueid = await self._redis.get(self._linked_key(linkedid))
        return await self.get(uniqueid if isinstance(uniqueid, str) else linkedid)

