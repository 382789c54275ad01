"""A live picture of Asterisk's queues from AMI events (pure: events in, state updated).

Members and their state (free, in use, paused) and the callers waiting, per queue. Rebuilt
from a QueueStatus answer after every (re)connect, then kept current by events, so it is right
after a bridge restart. The supervisors' live board (its own issue) reads it instead of asking
Asterisk; until then only the bridge keeps it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

# Asterisk's device states as QueueMember/QueueMemberStatus report them.
_MEMBER_EVENTS = frozenset({"QueueMember", "QueueMemberAdded", "QueueMemberStatus", "QueueMemberPause",
                            "QueueMemberPenalty"})
# Every event `QueueModel.apply` reads; the bridge hands it no other.
MODEL_EVENTS = _MEMBER_EVENTS | {"QueueMemberRemoved", "QueueEntry", "QueueCallerJoin", "QueueCallerLeave",
                                 "QueueCallerAbandon"}

_STATUS = {"0": "unknown", "1": "free", "2": "in use", "3": "busy", "4": "invalid", "5": "unavailable",
           "6": "ringing", "7": "ringing in use", "8": "on hold"}


@dataclass(slots=True)
class Member:
    interface: str
    penalty: int = 0
    status: str = "unknown"
    paused: bool = False


@dataclass(slots=True)
class Waiting:
    uniqueid: str
    caller: str
    position: int
    joined_at: float = 0.0  # epoch seconds: when the caller joined the queue


@dataclass(slots=True)
class QueueModel:
    members: dict[str, dict[str, Member]] = field(default_factory=dict)  # queue -> interface -> member
    callers: dict[str, dict[str, Waiting]] = field(default_factory=dict)  # queue -> uniqueid -> caller

    def resync(self, status: Iterable[Mapping[str, str]], now: float) -> None:
        """Replace everything with a QueueStatus answer (QueueMember and QueueEntry events)."""
        self.members.clear()
        self.callers.clear()
        for event in status:
            self.apply(event, now)

    def apply(self, event: Mapping[str, str], now: float) -> None:
        """One AMI event at `now` (epoch seconds; AMI events carry no time of their own)."""
        name = event.get("Event", "")
        queue = event.get("Queue", "")
        if name in _MEMBER_EVENTS:
            interface = event.get("StateInterface") or event.get("Interface") or event.get("Location", "")
            member = self.members.setdefault(queue, {}).setdefault(interface, Member(interface))
            if "Penalty" in event:
                member.penalty = int(event["Penalty"] or 0)
            if "Status" in event:
                member.status = _STATUS.get(event["Status"], event["Status"])
            if "Paused" in event:
                member.paused = event["Paused"] == "1"
        elif name == "QueueMemberRemoved":
            interface = event.get("StateInterface") or event.get("Interface", "")
            self.members.get(queue, {}).pop(interface, None)
        elif name in ("QueueEntry", "QueueCallerJoin"):
            # A QueueEntry (from QueueStatus) says how long the caller has waited already.
            waited = int(event["Wait"]) if event.get("Wait", "").isdigit() else 0
            waiting = Waiting(event.get("Uniqueid", ""), event.get("CallerIDNum", ""), int(event.get("Position", "0")),
                              now - waited)
            self.callers.setdefault(queue, {})[waiting.uniqueid] = waiting
        elif name in ("QueueCallerLeave", "QueueCallerAbandon"):
            self.callers.get(queue, {}).pop(event.get("Uniqueid", ""), None)

    def free_members(self, queue: str) -> list[str]:
        return sorted(m.interface for m in self.members.get(queue, {}).values()
                      if m.status == "free" and not m.paused)

    def waiting(self, queue: str) -> int:
        return len(self.callers.get(queue, {}))

    def longest_wait(self, queue: str, now: float) -> float:
        return max((now - w.joined_at for w in self.callers.get(queue, {}).values()), default=0.0)

    def agents(self) -> dict[str, tuple[str, bool]]:
        """Each member interface's device state and whether it is paused in any queue."""
        out: dict[str, tuple[str, bool]] = {}
        for members in self.members.values():
            for interface, member in members.items():
                status, paused = out.get(interface, (member.status, False))
                out[interface] = (member.status if member.status != "unknown" else status, paused or member.paused)
        return out
