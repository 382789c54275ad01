"""SMS requests raised during a call, recorded durably in a Redis Stream for the SMS workers.

The stream is the hand-over point: a request is accepted once XADD has answered, and workers
(a consumer group) deliver from there.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from hotline_core.keys import RedisKeys
from hotline_core.redispipe import RedisPipe


@dataclass(frozen=True, slots=True)
class SmsRequest:
    kind: str  # "self_service", "post_call", ...
    uniqueid: str
    number: str
    text: str


class SmsJobs:
    def __init__(self, pipe: RedisPipe, prefix: str):
        self._pipe = pipe
        self.stream = RedisKeys(prefix).sms_jobs

    async def add(self, request: SmsRequest) -> str:
        """Record the request; returns its stream id."""
        entry_id: str = await self._pipe.execute(
            "XADD", self.stream, "*", "kind", request.kind, "uniqueid", request.uniqueid, "number", request.number,
            "text", request.text, "created", f"{time.time():.3f}",
        )
        return entry_id
