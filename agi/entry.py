"""Call entry: fix the caller's identity, record the call, and say which variables to set.

`CallEntry` is shared by the FastAGI routes (`EntryRoute`, and the IVR through `enter_channel`)
and the classic process-per-call script (`hotline-agi`, pyst2), so all set exactly the same
variables.

Over FastAGI an entry is driven by callbacks (`EntryCall`): Redis's reply to the lookup,
Asterisk's reply to the MSet, Redis's reply to the record, each calling the next step. A task
per call, and the wake-ups of its stack of coroutines at each reply, cost more CPU than the
entry's own work (measured with bench/bench_agi.py --cpu-only; see the README).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import structlog

from agi.protocol import AgiError, CommandFailed, Environment, Response, format_command
from agi.session import AgiSession, ChannelGone, IdleTimeout, log_ended
from agi.variables import Contract, ContractLines, one_by_one, set_commands
from hotline_core.calls import CallRecord, CallRecords
from hotline_core.logs import bind_call_fields
from hotline_core.metrics import Metrics
from tier_lookup.identity import Identity
from tier_lookup.service import PendingLookup, TierLookup

log = structlog.get_logger("agi.entry")


class Entered(NamedTuple):
    """A call entered (a tuple: one is made at every call entry, and a frozen dataclass costs
    four times as much to make)."""

    identity: Identity
    contract: Contract  # the dialplan contract's variables for this caller, and their AGI lines
    saving: asyncio.Future[Any]  # the call record's Redis reply

    def report_saved(self) -> bool:
        """Once `saving` is done: whether the record was written; False with one log line."""
        error = self.saving.exception() if not self.saving.cancelled() else asyncio.CancelledError()
        if error is not None:
            log.warning("call record not saved", error=f"{type(error).__name__}: {error}")
        return error is None

    async def saved(self) -> bool:
        """Wait for the call record; False (and one log line) if it could not be written."""
        await asyncio.wait([self.saving])
        return self.report_saved()


@dataclass(frozen=True, slots=True)
class CallEntry:
    lookup: TierLookup
    records: CallRecords
    metrics: Metrics = field(default_factory=Metrics)
    lines: ContractLines = field(default_factory=ContractLines)

    def entered(self, env: Mapping[str, str], route: str, linkedid: str | None, pending: PendingLookup) -> Entered:
        """The lookup has answered: fix the identity, count it, send the call record (its reply
        comes later; the caller waits only on the lookup) and say which variables to set."""
        identity = self.lookup.finish(pending)
        uniqueid = env.get("agi_uniqueid", "")
        record = CallRecord(
            uniqueid=uniqueid,
            linkedid=linkedid or uniqueid,
            channel=env.get("agi_channel", ""),
            identity=identity.to_json(),
            entered_at=time.time(),
            route=route,
            lookup_ms=pending.elapsed_s * 1000,
        )
        self.metrics.count_entry(identity.tier, identity.level, record.lookup_ms / 1000, identity.degraded)
        try:
            saving = self.records.submit(record)
        except OSError as exc:  # the pipe refused at once (too many unanswered commands)
            saving = asyncio.get_running_loop().create_future()
            saving.set_exception(exc)
        return Entered(identity, self.lines.for_identity(identity), saving)

    async def enter(self, env: Mapping[str, str], route: str, linkedid: str | None) -> Entered:
        """`entered` after awaiting the lookup (for callers that have a task anyway)."""
        pending = self.lookup.begin(env.get("agi_callerid", ""))
        if pending.reply is not None:
            await asyncio.wait([pending.reply])
        return self.entered(env, route, linkedid, pending)


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


Outcome = Entered | BaseException
Ended = ChannelGone | IdleTimeout | AgiError


class EntryCall:
    """One call entry over FastAGI, each step called by the reply it waited for: the lookup's,
    then Asterisk's to the contract's command(s), then the record's. It ends by calling `done`
    once with what it came to: the Entered, or the exception that ended it (the conversation
    ended, or a bug). It never closes the session: `done` decides."""

    __slots__ = ("_done", "_entered", "_entry", "_env", "_extra", "_failed", "_mset", "_pending", "_queue",
                 "_session", "_started")

    def __init__(self, entry: CallEntry, session: AgiSession, env: Environment, started: float,
                 done: Callable[[Outcome], None], extra: Mapping[str, object]):
        self._entry = entry
        self._session = session
        self._env = env
        self._started = started
        self._done = done
        self._extra = extra
        self._entered: Entered | None = None
        self._failed = 0  # commands Asterisk refused
        self._mset = False  # the command awaiting its reply is the contract's one MSet
        self._queue: deque[bytes] = deque()  # commands still to send, one reply at a time

    def start(self) -> None:
        pending = self._pending = self._entry.lookup.begin(self._env.get("agi_callerid"))
        if pending.reply is None or pending.reply.done():
            self._looked_up(pending.reply)
        else:
            pending.reply.add_done_callback(self._looked_up)

    def _looked_up(self, _reply: object) -> None:
        try:
            env = self._env
            linkedid = env.arguments[0] if env.arguments else None
            entered = self._entered = self._entry.entered(env.variables, env.script, linkedid, self._pending)
            bind_call_fields(tier=entered.identity.tier)
            lines = entered.contract.lines
            self._mset = len(lines) == 1
            self._queue.extend(lines)
            self._session.send(self._queue.popleft(), self._replied)
        except Exception as exc:  # ChannelGone (the caller left meanwhile) or a bug: this call only
            self._end(exc)

    def _replied(self, reply: Response | CommandFailed | Ended) -> None:
        try:
            if isinstance(reply, BaseException):
                self._end(reply)
                return
            if reply.__class__ is not Response or reply.result == "-2":  # EXEC's -2: no such application
                _log_refusal(reply)
                if self._mset:
                    # MSet missing or refused (an unusual Asterisk build): one command each.
                    assert self._entered is not None
                    self._queue.extend(format_command(*c) for c in one_by_one(self._entered.contract.variables))
                else:
                    self._failed += 1
            self._mset = False
            if self._queue:
                self._session.send(self._queue.popleft(), self._replied)
                return
            saving = self._saving()
            if saving.done():
                self._saved(saving)
            else:
                saving.add_done_callback(self._saved)
        except Exception as exc:
            self._end(exc)

    def _saving(self) -> asyncio.Future[Any]:
        assert self._entered is not None
        return self._entered.saving

    def _saved(self, _saving: object) -> None:
        try:
            entered = self._entered
            assert entered is not None
            entered.report_saved()
            log_entry(self._env.variables, entered.identity, self._started, failed_commands=self._failed,
                      hung_up=self._session.hung_up, **self._extra)
        except Exception as exc:
            self._end(exc)
            return
        self._done(entered)

    def _end(self, error: BaseException) -> None:
        entered = self._entered
        if entered is not None:  # the record was sent: say if it fails, whenever that is known
            if entered.saving.done():
                entered.report_saved()
            else:
                entered.saving.add_done_callback(lambda _saving: entered.report_saved())
        self._done(error)


@dataclass(frozen=True, slots=True)
class EntryRoute:
    """FastAGI route `entry`: AGI(agi://host:4573/entry,${CHANNEL(linkedid)})."""

    entry: CallEntry

    def __call__(self, session: AgiSession, env: Environment) -> None:
        started = time.perf_counter()
        bind_call_fields(uniqueid=env.get("agi_uniqueid"), caller=env.get("agi_callerid"))

        def done(outcome: Outcome) -> None:
            if isinstance(outcome, BaseException):
                log_ended(outcome)
            session.close()

        EntryCall(self.entry, session, env, started, done, {}).start()


async def enter_channel(entry: CallEntry, session: AgiSession, env: Environment, started: float,
                        **log_extra: object) -> Entered:
    """Call entry over FastAGI for a route that goes on in a task (the IVR): identify, set the
    contract's variables on the channel, wait for the call record, log the entry line. Raises
    what ended the conversation (ChannelGone, IdleTimeout, an AgiError)."""
    finished: asyncio.Future[Entered] = asyncio.get_running_loop().create_future()

    def done(outcome: Outcome) -> None:
        if finished.done():  # the task awaiting it was cancelled
            return
        if isinstance(outcome, BaseException):
            finished.set_exception(outcome)
        else:
            finished.set_result(outcome)

    EntryCall(entry, session, env, started, done, log_extra).start()
    return await finished


async def set_variables(session: AgiSession, variables: Sequence[tuple[str, str]]) -> int:
    """Set channel variables from a task in as few round trips as Asterisk allows; returns how
    many commands Asterisk refused (each logged). Raises ChannelGone if the caller has gone."""
    commands = [format_command(*c) for c in set_commands(variables)]
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
