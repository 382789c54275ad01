"""The `entry` route: fix the caller's identity and put it on the channel (no sockets here)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import structlog
from redis.exceptions import RedisError

from agi.protocol import CommandFailed, Environment
from agi.session import AgiSession
from agi.variables import identity_variables
from hotline.calls import CallRecord, CallRecords
from tier_lookup.service import TierLookup

log = structlog.get_logger("agi.entry")


@dataclass(frozen=True, slots=True)
class EntryRoute:
    lookup: TierLookup
    records: CallRecords
    record_budget_s: float = 0.2

    async def __call__(self, session: AgiSession, env: Environment) -> None:
        started = time.perf_counter()
        uniqueid = env.get("agi_uniqueid")
        caller = env.get("agi_callerid")
        # Dialplan contract: AGI(agi://host/entry,${CHANNEL(linkedid)}) passes the linkedid.
        linkedid = env.arguments[0] if env.arguments else uniqueid
        structlog.contextvars.bind_contextvars(uniqueid=uniqueid, caller=caller)
        identity = await self.lookup.identify(caller)
        structlog.contextvars.bind_contextvars(tier=identity.tier)
        commands = [("SET VARIABLE", name, value) for name, value in identity_variables(identity)]
        record = CallRecord(
            uniqueid=uniqueid,
            linkedid=linkedid,
            channel=env.get("agi_channel"),
            identity=identity.to_json(),
            entered_at=time.time(),
            route=env.script,
        )
        # The caller is waiting on the variables; the record is for later, so both go at once.
        saving = asyncio.create_task(self._save(record))
        try:
            replies = await session.run(commands)
        finally:
            await saving
        failed = [r for r in replies if isinstance(r, CommandFailed)]
        log.info(
            "call entry",
            access_level=identity.level,
            queue_priority=identity.queue_priority,
            degraded=identity.degraded,
            latency_ms=round((time.perf_counter() - started) * 1000, 2),
            failed_commands=len(failed),
            hung_up=session.hung_up,
        )
        for failure in failed:
            log.warning("asterisk refused a command", code=failure.code, message=failure.message,
                        usage=" ".join(failure.usage)[:200])

    async def _save(self, record: CallRecord) -> None:
        try:
            async with asyncio.timeout(self.record_budget_s):
                await self.records.write(record)
        except (TimeoutError, RedisError, OSError) as exc:
            log.warning("call record not saved", error=f"{type(exc).__name__}: {exc}")
