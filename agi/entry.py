"""Call entry: fix the caller's identity, record the call, and say which variables to set.

`CallEntry` is shared by the FastAGI route (`EntryRoute`, asyncio) and the classic
process-per-call script (`hotline-agi`, pyst2), so both set exactly the same variables.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from agi.protocol import CommandFailed, Environment, Response, format_command
from agi.session import AgiSession
from agi.variables import Contract, ContractLines, one_by_one, set_commands
from hotline_core.calls import CallRecord, CallRecords
from hotline_core.logs import bind_call_fields
from hotline_core.metrics import Metrics
from tier_lookup.identity import Identity
from tier_lookup.service import TierLookup

log = structlog.get_logger("agi.entry")


@dataclass(frozen=True, slots=True)
class Entered:
    identity: Identity
    contract: Contract  # the dialplan contract's variables for this caller, and their AGI lines
    saving: list[asyncio.Future[Any]]  # the call record's Redis replies

    async def saved(self) -> bool:
        """Wait for the call record; False (and one log line) if it could not be written."""
        # The commands are already sent: awaiting each in turn costs no time, and less CPU
        # than gather's task machinery at every call entry.
        error: BaseException | None = None
        for future in self.saving:
            try:
                await future
            except Exception as exc:  # every failure means the same: not saved
                error = error or exc
        if error is not None:
            log.warning("call record not saved", error=f"{type(error).__name__}: {error}")
        return error is None


@dataclass(frozen=True, slots=True)
class CallEntry:
    lookup: TierLookup
    records: CallRecords
    metrics: Metrics = field(default_factory=Metrics)
    lines: ContractLines = field(default_factory=ContractLines)

    async def enter(self, env: Mapping[str, str], route: str, linkedid: str | None) -> Entered:
        """Identify the caller and send the call record (the caller waits only on the lookup;
        the record is written while the variables go to Asterisk)."""
        uniqueid = env.get("agi_uniqueid", "")
        looked_up = time.perf_counter()
        identity = await self.lookup.identify(env.get("agi_callerid", ""))
        record = CallRecord(
            uniqueid=uniqueid,
            linkedid=linkedid or uniqueid,
            channel=env.get("agi_channel", ""),
            identity=identity.to_json(),
            entered_at=time.time(),
            route=route,
            lookup_ms=(time.perf_counter() - looked_up) * 1000,
        )
        self.metrics.count_entry(identity.tier, identity.level, record.lookup_ms / 1000, identity.degraded)
        contract = self.lines.for_identity(identity)
        try:
            saving = self.records.submit(record)
        except OSError as exc:  # the pipe refused at once (too many unanswered commands)
            failed: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            failed.set_exception(exc)
            saving = [failed]
        return Entered(identity, contract, saving)


def log_entry(env: Mapping[str, str], identity: Identity, started: float, **extra: object) -> None:
    """The one canonical line per call entry."""
    log.info(
        "call entry",
        uniqueid=env.get("agi_uniqueid", ""),
        caller=env.get("agi_callerid", ""),
        tier=identity.tier,
        access_level=identity.level,
        queue_priority=identity.queue_priority,
        degraded=identity.degraded,
        latency_ms=round((time.perf_counter() - started) * 1000, 2),
        **extra,
    )


@dataclass(frozen=True, slots=True)
class EntryRoute:
    """FastAGI route `entry`: AGI(agi://host:4573/entry,${CHANNEL(linkedid)})."""

    entry: CallEntry

    async def __call__(self, session: AgiSession, env: Environment) -> None:
        started = time.perf_counter()
        bind_call_fields(uniqueid=env.get("agi_uniqueid"), caller=env.get("agi_callerid"))
        await enter_channel(self.entry, session, env, started)


async def enter_channel(entry: CallEntry, session: AgiSession, env: Environment, started: float,
                        **log_extra: object) -> Entered:
    """Call entry over FastAGI, shared by every route that starts a call: identify, set the
    contract's variables on the channel, wait for the call record, log the entry line."""
    linkedid = env.arguments[0] if env.arguments else None
    entered = await entry.enter(env.variables, env.script, linkedid)
    bind_call_fields(tier=entered.identity.tier)
    try:
        failed = await set_variables(session, entered.contract.variables, entered.contract.lines)
    finally:
        await entered.saved()
    log_entry(env.variables, entered.identity, started, failed_commands=failed, hung_up=session.hung_up,
              **log_extra)
    return entered


async def set_variables(session: AgiSession, variables: Sequence[tuple[str, str]],
                        lines: Sequence[bytes] | None = None) -> int:
    """Set channel variables in as few round trips as Asterisk allows; returns how many commands
    Asterisk refused (each logged). Raises ChannelGone if the caller has gone. `lines`: the
    commands already formatted (the contract's, kept per shape of identity)."""
    commands = lines if lines is not None else [format_command(*c) for c in set_commands(variables)]
    replies = await session.run_lines(commands)
    if len(commands) == 1 and not _succeeded(replies[0]):
        # MSet missing or refused (an unusual Asterisk build): fall back to one command each.
        _log_refusal(replies[0])
        replies = await session.run(one_by_one(variables))
    failed = [r for r in replies if not _succeeded(r)]
    for failure in failed:
        _log_refusal(failure)
    return len(failed)


def _succeeded(reply: Response | CommandFailed) -> bool:
    # EXEC answers result=-2 when the application does not exist.
    return isinstance(reply, Response) and reply.result != "-2"


def _log_refusal(reply: Response | CommandFailed) -> None:
    if isinstance(reply, CommandFailed):
        log.warning("asterisk refused a command", code=reply.code, message=reply.message,
                    usage=" ".join(reply.usage)[:200])
    else:
        log.warning("asterisk refused a command", code=200, message=f"result={reply.result}")
