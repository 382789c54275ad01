"""Render asterisk_conf/ for one deployment (pure: templates and values in, file texts out).

Templates hold `@@NAME@@` placeholders (Asterisk's own `${...}` stays untouched). Lists (agent
endpoints, queue members) are generated here. Every placeholder must be known and every value
single-line, so a typo fails the render instead of shipping a broken Asterisk.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path

from hotline_core.policy import Announcements, Policy

_PLACEHOLDER = re.compile(r"@@([A-Z_]+)@@")
_NAME = re.compile(r"^[a-z][a-z0-9_-]*$")


class RenderError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class AgentEndpoint:
    name: str  # also the queue member name and the SIP user
    secret: str
    # Where Asterisk reaches the agent, e.g. sip:agent1@127.0.0.1:5070; empty: the phone
    # registers (with the name and secret) and is reached where it last registered from.
    contact: str = ""


@dataclass(frozen=True, slots=True)
class LevelQueue:
    name: str
    weight: int  # the level's queue priority
    maxlen: int  # 0: no limit
    servicelevel: int  # seconds: the answer-rate threshold Asterisk's SL figures use
    announce: Announcements = field(default_factory=Announcements)


def level_queues(policy: Policy) -> tuple[LevelQueue, ...]:
    return tuple(LevelQueue(policy.queue(lv.name), lv.queue_priority, lv.max_queue_length, lv.service_level_seconds,
                            lv.announce) for lv in policy.levels)


def _announcements(announce: Announcements) -> str:
    """app_queue's settings for what a waiting caller hears (queue-common says nothing)."""
    yes = {True: "yes", False: "no"}
    lines = [f"announce-position = {yes[announce.position]}", f"announce-holdtime = {yes[announce.holdtime]}",
             f"announce-frequency = {announce.frequency_s}",
             f"periodic-announce-frequency = {announce.periodic_s}"]
    if announce.position or announce.holdtime:
        lines.append("announce-position-only-up = yes")  # say it again only when it changed for the better
    if announce.periodic_s:
        lines.append("periodic-announce = queue-periodic-announce")
    return "\n".join(lines) + "\n"


_DNS_NAME = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}"
                       r"[A-Za-z0-9])?)*\.?$")


@dataclass(frozen=True, slots=True)
class Deployment:
    etc_dir: str = "/etc/asterisk-hotline"
    state_dir: str = "/var/lib/asterisk-hotline"
    sip_bind: str = "127.0.0.1"
    sip_port: int = 5060
    caller_match: str = "127.0.0.1"
    caller_dtmf_mode: str = "rfc4733"
    agi_host: str = "127.0.0.1"
    agi_port: int = 4573
    # Several `hotline serve` instances: a DNS name whose _agi._tcp SRV records list them;
    # Asterisk then reaches them by hagi://, in the records' priority and weight order, the next
    # one when one does not answer. Empty: the one agi://agi_host:agi_port.
    agi_srv: str = ""
    # Several Asterisk servers: each its own name, which prefixes its channels' uniqueids
    # (NAME-1732262400.17), so two servers' calls never share an id in the call records.
    system_name: str = ""
    ami_bind: str = "127.0.0.1"
    ami_port: int = 5038
    ami_username: str = "hotline"
    ami_secret: str = ""
    ami_permit: str = "127.0.0.1/255.255.255.255"
    rtp_start: int = 20000
    rtp_end: int = 20999
    fallback_level: str = "ordinary_easyown"
    fallback_prio: int = 10
    queue_timeout: int = 300
    agents: tuple[AgentEndpoint, ...] = field(default_factory=tuple)
    level_queues: tuple[LevelQueue, ...] = field(default_factory=tuple)


def _agent_blocks(agents: tuple[AgentEndpoint, ...]) -> tuple[str, str]:
    endpoints, members = [], []
    for agent in agents:
        if not _NAME.match(agent.name):
            raise RenderError(f"agent name {agent.name!r} must be lower-case letters, digits, - or _")
        if not agent.secret:
            raise RenderError(f"agent {agent.name} has no secret")
        endpoints.append(
            f"[{agent.name}](endpoint-common)\n"
            f"context = agents\n"
            f"auth = {agent.name}-auth\n"
            f"aors = {agent.name}\n"
            f"dtmf_mode = rfc4733\n\n"
            f"[{agent.name}-auth]\ntype = auth\nauth_type = userpass\nusername = {agent.name}\n"
            f"password = {agent.secret}\n\n"
            f"[{agent.name}]\ntype = aor\n"
            + (f"contact = {agent.contact}\nmax_contacts = 1\n" if agent.contact else
               # One phone per agent: a new registration (the agent moved desks) replaces the old.
               "max_contacts = 1\nremove_existing = yes\n")
        )
        members.append(f"member => PJSIP/{agent.name},0,{agent.name}")
    return "\n".join(endpoints), "\n".join(members)


def values(deployment: Deployment) -> dict[str, str]:
    if not deployment.ami_secret:
        raise RenderError("the AMI secret is empty: set HOTLINE_AMI_SECRET (or --set AMI_SECRET=...)")
    out = {k.upper(): str(v) for k, v in asdict(deployment).items() if k not in ("agents", "level_queues")}
    if deployment.agi_srv and not _DNS_NAME.match(deployment.agi_srv):
        raise RenderError(f"AGI_SRV {deployment.agi_srv!r} is not a DNS name (e.g. hotline-agi.example.net)")
    if deployment.system_name and not _NAME.match(deployment.system_name):
        raise RenderError(f"SYSTEM_NAME {deployment.system_name!r}: lower-case letters, digits, - or _")
    out["SYSTEM_NAME_LINE"] = (f"systemname = {deployment.system_name}" if deployment.system_name
                               else "; systemname: not set (one Asterisk; uniqueids are epoch.sequence)")
    out["AGI_URL"] = (f"hagi://{deployment.agi_srv}" if deployment.agi_srv
                      else f"agi://{deployment.agi_host}:{deployment.agi_port}")
    out["AGENT_ENDPOINTS"], out["QUEUE_MEMBERS"] = _agent_blocks(deployment.agents)
    out["LEVEL_QUEUES"] = "\n".join(
        f"[{q.name}](queue-common)\nweight = {q.weight}\nmaxlen = {q.maxlen}\nservicelevel = {q.servicelevel}\n"
        + _announcements(q.announce)
        for q in deployment.level_queues
    )
    for key, value in out.items():
        if key not in ("AGENT_ENDPOINTS", "QUEUE_MEMBERS", "LEVEL_QUEUES") and ("\n" in value or "\r" in value):
            raise RenderError(f"{key}: value must be a single line")
    return out


def render(templates: Mapping[str, str], deployment: Deployment) -> dict[str, str]:
    """File name -> rendered text for every template."""
    filled = values(deployment)
    rendered = {}
    for name, text in templates.items():
        unknown = sorted({m for m in _PLACEHOLDER.findall(text) if m not in filled})
        if unknown:
            raise RenderError(f"{name}: unknown placeholder(s) {', '.join('@@' + u + '@@' for u in unknown)}")
        rendered[name] = _PLACEHOLDER.sub(lambda m: filled[m.group(1)], text)
    return rendered


def template_dir() -> Path:
    """The shipped templates: the .conf files of this package (package data)."""
    return Path(str(resources.files("asterisk_conf")))


def load_templates(directory: Path | None = None) -> dict[str, str]:
    return {p.name: p.read_text(encoding="utf-8") for p in sorted((directory or template_dir()).glob("*.conf"))}


# Files holding secrets (the AMI login, the agents' SIP passwords): readable by their owner only.
SECRET_FILES = frozenset({"manager.conf", "pjsip.conf"})


def write(rendered: Mapping[str, str], target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for name, text in rendered.items():
        path = target / name
        path.touch(mode=0o600 if name in SECRET_FILES else 0o644, exist_ok=True)
        if name in SECRET_FILES:
            path.chmod(0o600)  # also when the file was there before, with wider rights
        path.write_text(text, encoding="utf-8")


def deployment_from(
    overrides: Mapping[str, str], agents: tuple[AgentEndpoint, ...], queues: tuple[LevelQueue, ...] = ()
) -> Deployment:
    """A Deployment from KEY=VALUE overrides (keys as in the templates, e.g. SIP_PORT)."""
    fields = {f.upper(): f for f in Deployment.__dataclass_fields__ if f not in ("agents", "level_queues")}
    typed: dict[str, object] = {}
    defaults = Deployment()
    for key, raw in overrides.items():
        name = fields.get(key.upper())
        if name is None:
            raise RenderError(f"unknown setting {key!r}; known: {', '.join(sorted(fields))}")
        current = getattr(defaults, name)
        try:
            typed[name] = int(raw) if isinstance(current, int) else raw
        except ValueError:
            raise RenderError(f"{key}: {raw!r} is not a number") from None
    return Deployment(**typed, agents=agents, level_queues=queues)  # type: ignore[arg-type]


def parse_endpoint(spec: str) -> AgentEndpoint:
    """NAME:SECRET:CONTACT (e.g. agent1:s3cret:sip:agent1@10.0.0.5:5060), or NAME:SECRET for a
    phone that registers."""
    parts = spec.split(":", 2)
    if len(parts) not in (2, 3) or not all(parts):
        raise RenderError(f"agent {spec.partition(':')[0]!r}: expected NAME:SECRET or NAME:SECRET:CONTACT")
    return AgentEndpoint(*parts)


def parse_agent_file(text: str, source: str) -> tuple[AgentEndpoint, ...]:
    """The agents' phones, one per line: `name,secret` (a phone that registers) or
    `name,secret,contact`; blank lines and `#` comments skipped. A file, not arguments, so the
    secrets stay out of process listings and are written once (docker/first-run.sh)."""
    agents: list[AgentEndpoint] = []
    seen: set[str] = set()
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        fields = [f.strip() for f in line.split(",")]
        if len(fields) not in (2, 3) or not all(fields):
            raise RenderError(f"{source}:{number}: expected name,secret or name,secret,contact")
        if not _NAME.match(fields[0]):
            raise RenderError(f"{source}:{number}: agent name {fields[0]!r} must be lower-case letters, digits, - or _")
        if fields[0] in seen:
            raise RenderError(f"{source}:{number}: agent {fields[0]} is listed twice")
        seen.add(fields[0])
        agents.append(AgentEndpoint(*fields))
    return tuple(agents)
