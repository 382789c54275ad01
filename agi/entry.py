"""Call entry: fix the caller's identity, record the call, and say which variables to set.

`CallEntry` is shared by the FastAGI routes (`EntryRoute`, and the IVR through `enter_channel`)
and the classic process-per-call script (`hotline-agi`, pyst2), so all set exactly the same
variables.

Over FastAGI an entry is driven by callbacks (`EntryCall`): Redis's reply to the lookup,
Asterisk's reply to the MSet, Redis's reply to the record, each calling the next step. A task
per call, and the wake-ups of its stack of coroutines at each reply, cost more CPU than the
entry's own work (measured with bench/bench_agi.py --cpu-only; see docs/benchmarks.md).
"""

from __future__ import annotations

import contextvars
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import structlog

from agi.protocol import CommandFailed, Environment, Response, format_command
from agi.records import CallRecords
from agi.session import AgiSession, Ended, log_ended
from agi.variables import NO_APPLICATION, Contract, ContractLines, instead_of_refused, set_commands
from hotline_core.logs import bind_call_fields
from hotline_core.loops import handed, settled
from hotline_core.metrics import Metrics
from tier_lookup.identity import Identity
from tier_lookup.service import PendingLookup, TierLookup

log = structlog.get_logger("agi.entry")


class Entered(NamedTuple):
    """A call entered (a tuple: one is made at every call entry, and a frozen dataclass costs
    four times as much to make)."""

    identity: Identity
    contract: Contract  # the dialplan contract's variables for this caller, and their AGI lines


def record_saved(outcome: Any) -> bool:
    """Whether the call record was written, from its write's outcome; False with one log line."""
    if isinstance(outcome, BaseException):
        log.warning("call record not saved", error=f"{type(outcome).__name__}: {outcome}")
        return False
    return True


@dataclass(frozen=True, slots=True)
class CallEntry:
    lookup: TierLookup
    records: CallRecords
    metrics: Metrics = field(default_factory=Metrics)
    lines: ContractLines = field(default_factory=ContractLines)

    def entered(self, env: Mapping[str, str], route: str, linkedid: str | None, pending: PendingLookup,
                reply: Any, on_saved: Callable[[Any], None]) -> Entered:
        """The lookup has answered: fix the identity, count it, send the call record (`on_saved`
        gets its outcome, later or at once; the caller waits only on the lookup) and say which
        variables to set."""
        identity = self.lookup.finish(pending, reply)
        uniqueid = env.get("agi_uniqueid", "")
        lookup_s = pending.elapsed_s
        self.metrics.count_entry(identity.tier, identity.level, lookup_s, identity.degraded)
        self.records.submit_entry_then(uniqueid, linkedid or uniqueid, env.get("agi_channel", ""),
                                       identity.json_bytes(), time.time(), route, lookup_s * 1000, on_saved)
        return Entered(identity, self.lines.for_identity(identity))

    async def enter(self, env: Mapping[str, str], route: str, linkedid: str | None) -> Entered:
        """`entered` from a task: awaits the lookup, then the record (logged if not saved)."""
        pending = self.lookup.begin(env.get("agi_callerid", ""))
        replied, hand = handed()
        self.lookup.ask(pending, hand)
        saved, on_saved = handed()
        entered = self.entered(env, route, linkedid, pending, await replied, on_saved)
        record_saved(await saved)
        return entered


def log_entry(env: Mapping[str, str], identity: Identity, started: float, **extra: object) -> None:
    """The one canonical line per call entry."""
    # `bind()` first: the module's logger is structlog's lazy proxy, and a method looked up on
    # it goes through __getattr__ (a failed lookup, then the bind) at every call; `bind()` with
    # no values returns the logger structlog has kept, the same one, for a fifth of the cost.
    log.bind().info(
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


class EntryCall:
    """One call entry over FastAGI, each step called by the reply it waited for: the lookup's,
    then Asterisk's to the contract's command(s); the record's reply comes on its own. It ends,
    once both the variables are set and the record has answered, by calling `done` with the
    Entered, or earlier with the exception that ended it (the conversation ended, or a bug). It
    never closes the session: `done` decides."""

    __slots__ = ("_context", "_done", "_entered", "_entry", "_env", "_extra", "_failed", "_mset", "_pending",
                 "_queue", "_record", "_session", "_set", "_started")

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
        self._set = False  # the variables are set
        self._record: object = _WAITING  # the record write's outcome
        # The call's context (its log fields). Redis's replies are handed over from the Redis
        # connection's reading, which runs in no call's context: each step runs in this one.
        self._context = contextvars.copy_context()

    def start(self) -> None:
        lookup = self._entry.lookup
        self._pending = lookup.begin(self._env.get("agi_callerid"))
        lookup.ask(self._pending, self._on_lookup)

    def _on_lookup(self, reply: Any) -> None:
        # A copy per step: a step handed its reply at once, inside another, cannot re-enter.
        self._context.copy().run(self._looked_up, reply)

    def _on_record(self, outcome: Any) -> None:
        self._context.copy().run(self._record_written, outcome)

    def _looked_up(self, reply: Any) -> None:
        try:
            env = self._env
            linkedid = env.arguments[0] if env.arguments else None
            entered = self._entered = self._entry.entered(env.variables, env.script, linkedid, self._pending, reply,
                                                          self._on_record)
            bind_call_fields(tier=entered.identity.tier)
            lines = entered.contract.lines
            self._mset = len(lines) == 1
            self._queue.extend(lines)
            self._session.send(self._queue.popleft(), self._replied)
        except Exception as exc:  # ChannelGone (the caller left meanwhile) or a bug: this call only
            self._done(exc)

    def _replied(self, reply: Response | CommandFailed | Ended) -> None:
        try:
            if isinstance(reply, BaseException):
                self._done(reply)
                return
            if not _succeeded(reply):
                _log_refusal(reply)
                instead: list[tuple[str, ...]] = []
                if self._mset:
                    assert self._entered is not None
                    pairs = self._entered.contract.variables
                    instead = instead_of_refused(set_commands(pairs), pairs)
                if instead:
                    self._queue.extend(format_command(*c) for c in instead)
                else:
                    self._failed += 1
            self._mset = False
            if self._queue:
                self._session.send(self._queue.popleft(), self._replied)
                return
            self._set = True
            if self._record is not _WAITING:
                self._finish()
        except Exception as exc:
            self._done(exc)

    def _record_written(self, outcome: Any) -> None:
        # Said whenever it comes, even after the call ended some other way.
        record_saved(outcome)
        self._record = outcome
        if self._set:
            self._finish()

    def _finish(self) -> None:
        try:
            entered = self._entered
            assert entered is not None
            log_entry(self._env.variables, entered.identity, self._started, failed_commands=self._failed,
                      hung_up=self._session.hung_up, **self._extra)
        except Exception as exc:
            self._done(exc)
            return
        self._done(entered)


_WAITING = object()  # no outcome yet


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
    finished, done = settled()
    EntryCall(entry, session, env, started, done, log_extra).start()
    entered: Entered = await finished
    return entered


async def set_variables(session: AgiSession, variables: Sequence[tuple[str, str]]) -> int:
    """Set channel variables from a task in as few round trips as Asterisk allows; returns how
    many commands Asterisk refused (each logged). Raises ChannelGone if the caller has gone."""
    commands = set_commands(variables)
    replies = await session.run_lines([format_command(*c) for c in commands])
    instead = instead_of_refused(commands, variables) if not _succeeded(replies[0]) else []
    if instead:
        _log_refusal(replies[0])
        replies = await session.run(instead)
    failed = [r for r in replies if not _succeeded(r)]
    for failure in failed:
        _log_refusal(failure)
    return len(failed)


def _succeeded(reply: Response | CommandFailed) -> bool:
    return isinstance(reply, Response) and reply.result != NO_APPLICATION


def _log_refusal(reply: Response | CommandFailed) -> None:
    if isinstance(reply, CommandFailed):
        log.warning("asterisk refused a command", code=reply.code, message=reply.message,
                    usage=" ".join(reply.usage)[:200])
    else:
        log.warning("asterisk refused a command", code=200, message=f"result={reply.result}")
