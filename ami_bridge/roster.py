"""The agent roster: who the agents are, their phones, skills, tenure and KPIs.

Imported from CSV (header row; columns agent_id, name, interface, skills, tenure_start,
satisfaction, first_contact_resolution), kept in Redis as one hash, edited with the CLI.
Parsing is pure; bad rows are reported with their line and nothing is applied.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import asdict, dataclass, replace
from datetime import date

import structlog
from redis.asyncio import Redis

from hotline_core.keys import RedisKeys

REQUIRED = ("agent_id", "name", "interface", "tenure_start", "satisfaction", "first_contact_resolution")
_AGENT_ID = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
_INTERFACE = re.compile(r"^(PJSIP|SIP|Local|IAX2)/[A-Za-z0-9_.@/-]+$")


log = structlog.get_logger("roster")


class RosterError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Agent:
    agent_id: str
    name: str
    interface: str  # how Asterisk rings the agent, e.g. PJSIP/agent1
    skills: tuple[str, ...]
    tenure_start: date
    satisfaction: float  # share of satisfied customers over the last three months, 0..1
    first_contact_resolution: float  # 0..1
    # Which of the two figures came from the records' measurements (`agents desks --measured
    # --apply`) rather than being typed in: "satisfaction", "first_contact_resolution".
    measured: tuple[str, ...] = ()

    def tenure_months(self, today: date) -> int:
        months = (today.year - self.tenure_start.year) * 12 + today.month - self.tenure_start.month
        return months - (1 if today.day < self.tenure_start.day else 0)

    def to_json(self) -> str:
        data = asdict(self)
        data["tenure_start"] = self.tenure_start.isoformat()
        data["skills"] = list(self.skills)
        data["measured"] = list(self.measured)
        return json.dumps(data, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> Agent:
        """An agent as the roster stores it; RosterError names what is missing or wrong (an entry
        written by hand in Redis, or by an older hotline)."""
        try:
            data = json.loads(text)
            return cls(str(data["agent_id"]), str(data["name"]), str(data["interface"]),
                       tuple(str(s) for s in data["skills"]), date.fromisoformat(data["tenure_start"]),
                       float(data["satisfaction"]), float(data["first_contact_resolution"]),
                       tuple(str(m) for m in data.get("measured", ())))
        except KeyError as exc:
            raise RosterError(f"the field {exc.args[0]!r} is missing") from None
        except (ValueError, TypeError, AttributeError) as exc:
            raise RosterError(f"{type(exc).__name__}: {exc}"[:200]) from None


def parse_agent(fields: dict[str, str]) -> Agent:
    """One roster row (column -> text) as an Agent; RosterError says what is wrong."""
    agent_id = fields.get("agent_id", "").strip()
    if not _AGENT_ID.match(agent_id):
        raise RosterError(f"agent_id {agent_id!r}: lower-case letters, digits, - or _, starting with a letter")
    interface = fields.get("interface", "").strip()
    if not _INTERFACE.match(interface):
        raise RosterError(f"interface {interface!r}: expected e.g. PJSIP/{agent_id}")
    name = fields.get("name", "").strip()
    if not name:
        raise RosterError("name is empty")
    try:
        tenure = date.fromisoformat(fields.get("tenure_start", "").strip())
    except ValueError:
        raise RosterError(f"tenure_start {fields.get('tenure_start')!r} is not a date (YYYY-MM-DD)") from None
    return Agent(
        agent_id=agent_id,
        name=name,
        interface=interface,
        skills=tuple(s for s in re.split(r"[;|\s]+", fields.get("skills", "").strip()) if s),
        tenure_start=tenure,
        satisfaction=_share(fields, "satisfaction"),
        first_contact_resolution=_share(fields, "first_contact_resolution"),
    )


def _share(fields: dict[str, str], column: str) -> float:
    """0.96, 96 or 96% all mean 96 percent; with a % sign it is always a percentage (1% is 0.01)."""
    raw = fields.get(column, "").strip()
    text = raw.removesuffix("%")
    try:
        value = float(text)
    except ValueError:
        raise RosterError(f"{column} {fields.get(column)!r} is not a number") from None
    if raw.endswith("%") or value > 1:
        value /= 100
    if not 0 <= value <= 1:
        raise RosterError(f"{column} {fields.get(column)!r} is not a share between 0 and 100%")
    return value


def parse_roster(text: str) -> tuple[list[Agent], list[str]]:
    """All agents of a CSV roster, or the problems ('line N: reason') if any row is bad."""
    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        return [], [f"line {line}: a NUL character (not a text file?)"]
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    header = [h.strip() for h in reader.fieldnames or []]
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        return [], [f"line 1: required column {missing[0]!r} is missing"]
    twice = sorted({h for h in header if header.count(h) > 1})
    if twice:
        return [], [f"line 1: column {twice[0]!r} appears twice"]
    reader.fieldnames = header
    agents: list[Agent] = []
    problems: list[str] = []
    seen: dict[str, int] = {}
    interfaces: dict[str, str] = {}
    for row in reader:
        line = reader.line_num
        try:
            agent = parse_agent({k: v or "" for k, v in row.items() if k})
        except RosterError as exc:
            problems.append(f"line {line}: {exc}")
            continue
        if agent.agent_id in seen:
            problems.append(f"line {line}: agent {agent.agent_id} already on line {seen[agent.agent_id]}")
            continue
        if agent.interface in interfaces:
            problems.append(f"line {line}: interface {agent.interface} is already {interfaces[agent.interface]}'s "
                            "(one phone rings for one agent)")
            continue
        seen[agent.agent_id] = line
        interfaces[agent.interface] = agent.agent_id
        agents.append(agent)
    return agents, problems


def edit(agent: Agent, changes: dict[str, str]) -> Agent:
    """`hotline agents set ID key=value ...` as a pure change; the result is validated whole."""
    current = json.loads(agent.to_json())
    current["skills"] = ";".join(current["skills"])
    del current["measured"]  # not typed: it says which figures the measurements gave
    unknown = sorted(set(changes) - set(current))
    if unknown:
        raise RosterError(f"unknown field {unknown[0]!r}; fields: {', '.join(sorted(current))}")
    if "agent_id" in changes and changes["agent_id"] != agent.agent_id:
        raise RosterError("agent_id cannot change; remove the agent and add it again")
    edited = parse_agent({k: str(v) for k, v in {**current, **changes}.items()})
    # A figure typed in now is a typed-in figure; the other keeps where it came from.
    return replace(edited, measured=tuple(m for m in agent.measured if m not in changes))


class Roster:
    """The roster in Redis: one hash, agent id -> JSON."""

    def __init__(self, redis: Redis, prefix: str):
        self._redis = redis
        self.key = RedisKeys(prefix).roster
        self._said: set[tuple[str, str]] = set()  # unreadable entries already logged

    async def replace_all(self, agents: list[Agent]) -> None:
        async with self._redis.pipeline(transaction=True) as tx:
            tx.delete(self.key)
            if agents:
                tx.hset(self.key, mapping={a.agent_id: a.to_json() for a in agents})
            await tx.execute()

    async def all(self) -> list[Agent]:
        """Every agent that can be read. An unreadable entry is left out (logged once, by id and
        reason) rather than stopping whoever reads the roster: the desks go on being staffed."""
        data = await self._redis.hgetall(self.key)
        agents = []
        for agent_id, text in data.items():
            try:
                agents.append(Agent.from_json(str(text)))
            except RosterError as exc:
                if (str(agent_id), str(text)) not in self._said:
                    self._said.add((str(agent_id), str(text)))
                    log.error("roster entry unreadable; left out until it is mended (hotline agents set/remove)",
                              agent=str(agent_id)[:60], reason=str(exc))
        return sorted(agents, key=lambda a: a.agent_id)

    async def get(self, agent_id: str) -> Agent | None:
        text = await self._redis.hget(self.key, agent_id)
        return Agent.from_json(str(text)) if text else None

    async def put(self, agent: Agent) -> None:
        await self._redis.hset(self.key, agent.agent_id, agent.to_json())

    async def remove(self, agent_id: str) -> bool:
        return bool(await self._redis.hdel(self.key, agent_id))
