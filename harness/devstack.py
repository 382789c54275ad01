"""The local stack behind `make up`, `make call` and `make down`: Redis with the demo tier
tables, `hotline serve`, Asterisk 22 (sid root) with the project's configuration, and two SIPp
agents that answer. Everything on loopback; state and pid files under `.run/` in the checkout.

Production runs these under its own service manager; this exists so a newcomer has a working
hotline, and can place a call, with one command each.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path

from ami_bridge.client import AmiClient, AmiError
from ami_bridge.roster import Roster, parse_roster
from asterisk_conf.render import AgentEndpoint, Deployment, level_queues
from harness.asterisk import Asterisk, default_root, ensure_root, sound_dirs_setting
from harness.kannel import Kannel, delivered
from harness.postgres_server import PostgresServer
from harness.procs import Managed, StackError, free_udp_port, tcp_listening
from harness.redis_server import RedisServer, RedisServerError
from harness.sipp import SippAgent, place_call
from hotline.app import open_services
from hotline.web.auth import Sessions
from hotline_core.policy import load_policy
from hotline_core.settings import load_settings
from tier_lookup.importer import ImportOptions, import_table
from tier_lookup.tables import RowContext

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "demo"
DEMO_TABLES = ("highend", "campus", "rural", "brand", "redlist", "blacklist")
AGENTS = ("agent1", "agent2", "agent3", "agent4")


@dataclass
class Ports:
    redis: int = int(os.environ.get("HOTLINE_DEV_REDIS_PORT", "6390"))
    agi: int = int(os.environ.get("HOTLINE_DEV_AGI_PORT", "4573"))
    sip: int = int(os.environ.get("HOTLINE_DEV_SIP_PORT", "5060"))
    ami: int = int(os.environ.get("HOTLINE_DEV_AMI_PORT", "5038"))
    agent_base: int = int(os.environ.get("HOTLINE_DEV_AGENT_PORT", "5071"))
    postgres: int = int(os.environ.get("HOTLINE_DEV_POSTGRES_PORT", "5440"))
    rtp_start: int = 20000
    rtp_end: int = 20999


def run_dir() -> Path:
    return Path(os.environ.get("HOTLINE_RUN_DIR", ROOT / ".run"))


def _state_file() -> Path:
    return run_dir() / "stack.json"


def settings_file() -> Path:
    """The settings of the running stack: `hotline serve` reads them, and so does the CLI once
    `.run/env` is sourced (HOTLINE_CONFIG), so `hotline agents desks` reaches this stack's Redis."""
    return run_dir() / "hotline.yaml"


def write_settings(values: dict[str, str | int]) -> Path:
    path = settings_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    # JSON is YAML; secrets inside, so private to this user.
    path.write_text(json.dumps(values, indent=2) + "\n")
    path.chmod(0o600)
    env = run_dir() / "env"
    env.write_text(f"# source me: the hotline CLI, set up for the stack `make up` runs\n"
                   f"export PATH=\"{Path(sys.executable).parent}:$PATH\"\n"
                   f"export HOTLINE_CONFIG=\"{path}\"\n")
    return env


def _secret(name: str) -> str:
    """A secret of this checkout's stack, generated once into .run/secrets/NAME (private to you);
    each one independent, so knowing one (say the AMI login) tells nothing of another."""
    path = run_dir() / "secrets" / name
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        path.write_text(secrets.token_urlsafe(18))
        path.chmod(0o600)
    return path.read_text().strip()


def _ami_secret() -> str:
    """From HOTLINE_AMI_SECRET, else generated."""
    return os.environ.get("HOTLINE_AMI_SECRET") or _secret("ami")


# The agents' phones answer, talk this long and hang up (the caller then hears the survey).
AGENT_TALK_S = 3.0


def _agents(ports: Ports) -> list[SippAgent]:
    return [SippAgent(name, ports.agent_base + i, 31000 + 10 * i, run_dir(), talk_ms=int(AGENT_TALK_S * 1000))
            for i, name in enumerate(AGENTS)]


def _asterisk(ports: Ports) -> Asterisk:
    settings = load_settings(os.environ)
    deployment = Deployment(
        sip_port=ports.sip, agi_port=ports.agi, ami_port=ports.ami, ami_secret=_ami_secret(),
        rtp_start=ports.rtp_start, rtp_end=ports.rtp_end,
        agents=tuple(AgentEndpoint(a.name, _secret(f"sip-{a.name}"), a.contact) for a in _agents(ports)),
        level_queues=level_queues(load_policy(settings.policy_file)),
    )
    return Asterisk(default_root(), "dev", deployment, run_dir())


def _serve(ports: Ports) -> Managed:
    return Managed("hotline serve", run_dir() / "serve.pid", run_dir() / "serve.log")


def _kannel() -> Kannel:
    """Kannel with fixed loopback ports for the dev stack (its pids in .run/kannel/pids)."""
    directory = run_dir() / "kannel"
    return Kannel(directory, admin_port=13100, box_port=13101, smsc_port=13110, sendsms_port=13113)


def _kannel_pids() -> Path:
    return run_dir() / "kannel" / "pids.json"


def start_redis(port: int) -> str:
    data_dir = run_dir() / "redis"
    redis = Managed("redis", data_dir / "redis.pid", data_dir / "redis.log")
    url = f"redis://127.0.0.1:{port}/0"
    redis.check_stale()
    if redis.running_pid() is not None:
        print(f"redis: already running (pid {redis.running_pid()}) on 127.0.0.1:{port}")
        return url
    if tcp_listening(port):
        raise StackError(f"port {port} on 127.0.0.1 is taken by another program; set HOTLINE_DEV_REDIS_PORT")
    server = RedisServer(data_dir, port=port, persist=True)
    server.start()
    assert server.process is not None
    print(f"redis: started pid {server.process.pid} on 127.0.0.1:{port}, data in {data_dir}")
    return url


def _postgres_process() -> Managed:
    # SIGINT is PostgreSQL's fast shutdown; SIGTERM would wait for every client to leave.
    return Managed("postgres", run_dir() / "postgres.pid", run_dir() / "postgres" / "server.log", signal.SIGINT)


def start_postgres(port: int) -> str:
    """The records database: a cluster in .run/postgres, kept across `make down` like Redis's data."""
    server = PostgresServer(run_dir() / "postgres", port=port, durable=True)
    pid_file = run_dir() / "postgres" / "cluster" / "postmaster.pid"
    managed = _postgres_process()
    managed.check_stale()
    if managed.running_pid() is not None:
        print(f"postgres: already running (pid {managed.running_pid()}) on 127.0.0.1:{port}")
        return server.url()
    if tcp_listening(port):
        raise StackError(f"port {port} on 127.0.0.1 is taken by another program; set HOTLINE_DEV_POSTGRES_PORT")
    pid_file.unlink(missing_ok=True)  # left by a server that was killed
    server.start()
    assert server.process is not None
    managed.pid_file.write_text(str(server.process.pid))
    done = subprocess.run([str(Path(sys.executable).parent / "hotline"), "db", "migrate"], capture_output=True,
                          text=True, check=False, env={**os.environ, "HOTLINE_DATABASE_URL": server.url()})
    if done.returncode != 0:
        raise StackError(f"hotline db migrate: {done.stderr.strip()}")
    print(f"postgres: started pid {server.process.pid} on 127.0.0.1:{port}, records in {server.data_dir}; "
          f"{done.stdout.strip()}")
    return server.url()


async def load_demo(redis_url: str) -> None:
    settings = load_settings(os.environ, {"redis_url": redis_url})
    policy = load_policy(settings.policy_file)
    ctx = RowContext.for_policy(policy)
    activated = (datetime.now(policy.zone) - timedelta(days=3)).strftime("%Y-%m-%d %H:%M:%S")
    files = {table: (DEMO / f"{table}.csv").read_bytes() for table in DEMO_TABLES}
    files["newsub"] = f"number,activated_at\n13800000002,{activated}\n".encode()
    agents, problems = parse_roster((DEMO / "agents.csv").read_text(encoding="utf-8"))
    if problems:
        raise StackError(f"demo/agents.csv: {problems[0]}")
    async with open_services(settings, policy) as services:
        for table, data in files.items():
            report = await import_table(services.store, table, data, f"demo/{table}.csv", ctx,
                                        ImportOptions(allow_shrink=True))
            if not report.ok:
                raise StackError(report.summary())
        await Roster(services.redis, settings.redis_prefix).replace_all(agents)
        sessions = Sessions(services.redis, settings.redis_prefix)
        for agent in agents:
            await sessions.set_secret(agent.agent_id, _secret(f"screen-{agent.agent_id}"))
        await sessions.set_staff("supervisor", "supervisor", _secret("screen-supervisor"))
        await sessions.set_staff("handler", "handler", _secret("screen-handler"))
    print(f"demo: {len(files)} tier tables and {len(agents)} agents loaded (see demo/README.md); sign-in secrets "
          f"for the pages (agent1..agent4, supervisor, handler) in {run_dir() / 'secrets'}/screen-*")


def up() -> int:
    ports = Ports()
    print("asterisk: checking the sid root (built once, about a minute)…", flush=True)
    ensure_root(default_root())
    url = start_redis(ports.redis)
    asyncio.run(load_demo(url))
    database_url = start_postgres(ports.postgres)
    kannel = _kannel()
    if not _kannel_pids().exists():
        (run_dir() / "kannel").mkdir(parents=True, exist_ok=True)
        kannel.start()
        _kannel_pids().write_text(json.dumps(kannel.pids))
        print(f"kannel: sendsms on 127.0.0.1:{kannel.sendsms_port}, the fake SMSC writes what it gets to "
              f"{kannel.delivered_log}")
    env_file = write_settings({
        "redis_url": url, "agi_port": ports.agi, "ami_port": ports.ami, "ami_secret": _ami_secret(),
        "sms_gateway_url": kannel.sendsms_url, "sms_username": kannel.username, "sms_password": kannel.password,
        "sms_report_token": _secret("dlr-token"), "sound_dirs": sound_dirs_setting(default_root()),
        "metrics_token": _secret("metrics-token"),
        "database_url": database_url, "queue_log_file": str(_asterisk(ports).queue_log), "queue_log_source": "dev",
        "separate_pages": True,  # as production runs it: the pages in a process of their own
    })
    serve = _serve(ports)
    serve.check_stale()
    if serve.running_pid() is None:
        if tcp_listening(ports.agi):
            raise StackError(f"port {ports.agi} (FastAGI) is in use; set HOTLINE_DEV_AGI_PORT")
        env = {**os.environ, "HOTLINE_CONFIG": str(settings_file()), "HOTLINE_LOG_FORMAT": "json"}
        serve.start([str(Path(sys.executable).parent / "hotline"), "serve"], env=env)
        for _ in range(100):
            if tcp_listening(ports.agi):
                break
            time.sleep(0.05)
        print(f"hotline serve: FastAGI on 127.0.0.1:{ports.agi}, log {serve.log_file}")
    for agent in _agents(ports):
        agent.process.check_stale()
        if agent.process.running_pid() is None:
            agent.start()
            print(f"agent: {agent.name} answers at {agent.contact}")
    asterisk = _asterisk(ports)
    asterisk.process.check_stale()
    if asterisk.process.running_pid() is None:
        asterisk.start()
        print(f"asterisk: SIP 127.0.0.1:{ports.sip}, AMI 127.0.0.1:{ports.ami} (user hotline, secret in "
              f"{run_dir() / 'secrets' / 'ami'}), log {asterisk.messages_log}")
    _state_file().write_text(json.dumps({"ports": asdict(ports), "redis_url": url}))
    print("\nThe hotline is up. Place a call as a demo subscriber (see demo/README.md):\n"
          "  make call CALLER=13800000004 DTMF=12   # 1 bill inquiry, then 2 billing\n"
          "  make call CALLER=13800000005            # GoTone VIP\n"
          f"The hotline CLI against this stack (settings in {settings_file()}):\n"
          f"  source {env_file.relative_to(Path.cwd()) if env_file.is_relative_to(Path.cwd()) else env_file}\n"
          "  hotline agents desks --queues\n"
          "  hotline tiers lookup 13800000004\n"
          f"The pages: http://127.0.0.1:8088/agent (agent1, secret in .run/secrets/screen-agent1), "
          f"/board (supervisor, .run/secrets/screen-supervisor)\n"
          "Stop everything with: make down")
    return 0


def down() -> int:
    ports = Ports()
    if _state_file().exists():
        ports = Ports(**json.loads(_state_file().read_text())["ports"])
    _asterisk(ports).stop()
    for agent in _agents(ports):
        agent.stop()
    _serve(ports).stop()
    if _kannel_pids().exists():
        kannel = _kannel()
        kannel.pids = json.loads(_kannel_pids().read_text())
        kannel.stop()
        _kannel_pids().unlink()
    stopped = Managed("redis", run_dir() / "redis" / "redis.pid", run_dir() / "redis" / "redis.log").stop()
    postgres = _postgres_process().stop()
    _state_file().unlink(missing_ok=True)
    print("stopped asterisk, agents, hotline serve, kannel" + (", redis" if stopped else "")
          + (", postgres" if postgres else ""))
    return 0


async def call(caller: str, digits: str, dtmf: str, talk_s: float, survey: str | None = None) -> int:
    if not _state_file().exists():
        raise StackError("the hotline is not up: run `make up` first")
    ports = Ports(**json.loads(_state_file().read_text())["ports"])
    events: list[dict[str, str]] = []
    ami = AmiClient("127.0.0.1", ports.ami, "hotline", _ami_secret())
    ami.subscribe(events.append)
    try:
        await ami.connect()
    except AmiError as exc:
        raise StackError(f"{exc}; is Asterisk up (`make up`)?") from None
    started = time.monotonic()
    sms_log = _kannel().delivered_log
    sms_before = len(delivered(sms_log))
    try:
        # With a survey answer: the agent answers about a second after the last digit and hangs
        # up AGENT_TALK_S later; the key goes a second into the survey's question.
        result = await place_call(caller, ports.sip, free_udp_port(), 32000 + free_udp_port() % 1000 * 4,
                                  digits=digits, dtmf=dtmf, wait_ms=700, talk_ms=int(talk_s * 1000), gap_ms=2000,
                                  survey=survey, survey_after_ms=int((AGENT_TALK_S + 2.5) * 1000))
        await asyncio.sleep(0.3)
    finally:
        await ami.close()
    print(summarise(caller, events, time.monotonic() - started, result.returncode))
    for _ in range(30):  # the post-call SMS goes out when the agent's call ends
        if len(delivered(sms_log)) > sms_before:
            break
        await asyncio.sleep(0.1)
    texts = [text for _, text in delivered(sms_log)[sms_before:]]
    print(f"  post-call SMS:  {texts[0] if texts else '-'}")
    print("\nwhy, from the durable call record (hotline calls why " + caller + "):")
    await asyncio.sleep(1.5)  # the queue_log reader polls twice a second
    why = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "hotline"), "calls", "why", caller, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT, env={**os.environ, "HOTLINE_CONFIG": str(settings_file())})
    told, _ = await why.communicate()
    print(told.decode().rstrip())
    if result.returncode != 0:
        print(result.output[-1500:])
    return result.returncode


def summarise(caller: str, events: list[dict[str, str]], seconds: float, returncode: int) -> str:
    """What happened to the call, from the AMI events (pure)."""
    channel = next((e for e in events if e.get("Event") == "Newchannel" and e.get("CallerIDNum") == caller), None)
    if channel is None:
        return f"no call from {caller} reached Asterisk (SIPp exit {returncode})"
    uid = channel["Uniqueid"]
    variables = {
        e["Variable"]: e.get("Value", "") for e in events if e.get("Event") == "VarSet" and e.get("Uniqueid") == uid
    }
    joined = next((e for e in events if e.get("Event") == "QueueCallerJoin" and e.get("Uniqueid") == uid), None)
    connected = next((e for e in events if e.get("Event") == "AgentConnect" and e.get("Uniqueid") == uid), None)
    lines = [
        f"call from {caller} ({seconds:.1f} s, SIPp exit {returncode})",
        f"  bridge:         {variables.get('HOTLINE_BRIDGE', '?')} (AGISTATUS)",
        f"  tier:           {variables.get('HOTLINE_TIER', '?')} {variables.get('HOTLINE_TIER_LABEL', '')}",
        f"  brand / level:  {variables.get('HOTLINE_BRAND', '?')} / {variables.get('HOTLINE_LEVEL', '?')}",
        f"  queue priority: {variables.get('QUEUE_PRIO', '?')}",
        f"  skill chain:    {variables.get('HOTLINE_SKILL_CHAIN', '')}",
        f"  greeting:       {variables.get('HOTLINE_GREETING', '') or '-'}",
        f"  degraded:       {variables.get('HOTLINE_DEGRADED', '?')}",
        f"  IVR:            {variables.get('HOTLINE_IVR_RESULT', '-')} {variables.get('HOTLINE_SERVICE', '')}"
        f" via {variables.get('HOTLINE_IVR_PATH', '-')}",
        f"  queue:          {joined['Queue'] if joined else 'not reached'}",
        f"  answered by:    {connected.get('MemberName', connected.get('Interface')) if connected else 'nobody'}"
        + (f" after {connected.get('HoldTime', '?')} s in queue" if connected else ""),
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.devstack")
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("up")
    sub.add_parser("down")
    placed = sub.add_parser("call")
    placed.add_argument("--caller", required=True)
    placed.add_argument("--dtmf", default="", help="digits to press, one per menu, 2 s apart, e.g. 12")
    placed.add_argument("--dtmf-mode", choices=["info", "rfc4733"], default="info")
    placed.add_argument("--talk", type=float, default=6.0, help="seconds to stay on the line (without --survey)")
    placed.add_argument("--survey", help="the key to press at the post-call survey ('' for none: wait it out)")
    args = parser.parse_args(argv)
    try:
        if args.action == "up":
            return up()
        if args.action == "down":
            return down()
        return asyncio.run(call(args.caller, args.dtmf, args.dtmf_mode, args.talk, args.survey))
    except (StackError, RedisServerError) as exc:
        print(f"{args.action}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
