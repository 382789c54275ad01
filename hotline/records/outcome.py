"""What happened to one call in the queues, from its queue_log rows (pure).

A call may visit several queues; it is one offered call however many. Per visit:

| queue_log event | visit outcome | wait | talk |
|---|---|---|---|
| CONNECT | answered (by `agent`) | data1 (holdtime) | COMPLETECALLER/COMPLETEAGENT data2, or a transfer's data4 |
| ABANDON | abandoned (position data1) | data3 | |
| EXITWITHKEY | abandoned (pressed data1) | data4 | |
| EXITWITHTIMEOUT | released: the level's maximum wait | data3 | |
| EXITEMPTY | released: no agent could take it | data3 | |
| HOTLINE_REFUSED | released: refused at the door (data1: FULL, JOINEMPTY, ...) | 0 | |

HOTLINE_REFUSED is written by the shipped dialplan (QueueLog) when Queue() did not let the
caller in, because app_queue itself logs nothing then. A visit with none of these yet is waiting.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from hotline.records.queue_log import QueueLogRow

_RELEASES = {"EXITWITHTIMEOUT": "timeout", "EXITEMPTY": "empty"}
_TALK_ENDS = {"COMPLETECALLER": 2, "COMPLETEAGENT": 2, "TRANSFER": 4, "BLINDTRANSFER": 4, "ATTENDEDTRANSFER": 4}


@dataclass(slots=True)
class Visit:
    queue: str
    entered_at: int
    position: int | None = None
    outcome: str = "waiting"  # answered | abandoned | released | waiting
    wait_s: int | None = None
    talk_s: int | None = None
    agent: str = ""
    desk: str | None = None
    reason: str = ""  # for released and abandoned visits: why


@dataclass(slots=True)
class QueueOutcome:
    visits: list[Visit] = field(default_factory=list)

    @property
    def offered(self) -> bool:
        return bool(self.visits)

    @property
    def answering(self) -> Visit | None:
        return next((v for v in self.visits if v.outcome == "answered"), None)

    @property
    def outcome(self) -> str | None:
        if not self.visits:
            return None
        return "answered" if self.answering else self.visits[-1].outcome

    @property
    def wait_s(self) -> int | None:
        """Time in queues until answered (or until the last visit ended): every visit counts."""
        waits = [v.wait_s for v in self.visits[: self.visits.index(self.answering) + 1]] if self.answering else [
            v.wait_s for v in self.visits]
        known = [w for w in waits if w is not None]
        return sum(known) if known else None


def summarise(rows: Iterable[QueueLogRow], desk_of: Callable[[str], str | None] = lambda _agent: None
              ) -> QueueOutcome:
    """Rows of one call, in file order, into its visits. `desk_of` names the desk an agent sits at."""
    result = QueueOutcome()
    current: Visit | None = None
    seen: set[tuple[object, ...]] = set()
    for row in rows:
        line = (row.at, row.queue, row.agent, row.event, row.data)
        if line in seen:
            continue  # the same line again (a log replayed or copied): it happened once
        seen.add(line)
        if row.event == "ENTERQUEUE":
            current = Visit(row.queue, row.at, position=row.number(3))
            result.visits.append(current)
        elif row.event == "HOTLINE_REFUSED":
            result.visits.append(Visit(row.queue, row.at, outcome="released", wait_s=0,
                                       reason=(row.datum(1) or "refused").lower()))
            current = None
        elif current is None or row.queue != current.queue:
            continue  # an event of no visit we saw begin (the file started mid-call)
        elif row.event == "CONNECT":
            current.outcome, current.wait_s, current.agent = "answered", row.number(1), row.agent
            current.desk = desk_of(row.agent)
        elif row.event in _TALK_ENDS:
            current.talk_s = row.number(_TALK_ENDS[row.event])
        elif row.event == "ABANDON":
            current.outcome, current.position, current.wait_s = "abandoned", row.number(1), row.number(3)
            current.reason = "hung up"
        elif row.event == "EXITWITHKEY":
            current.outcome, current.position, current.wait_s = "abandoned", row.number(2), row.number(4)
            current.reason = f"pressed {row.datum(1)}"
        elif row.event in _RELEASES:
            current.outcome, current.position, current.wait_s = "released", row.number(1), row.number(3)
            current.reason = _RELEASES[row.event]
    return result
