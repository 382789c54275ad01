"""`hotline flows ...`: what telephony engineers run on flow files."""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

from hotline.app import flow_queues, flows_dir, open_services
from hotline.cli.common import parse_at
from hotline_core.policy import load_policy
from hotline_core.settings import Settings
from hotline_core.yamlpos import ConfigFileError
from ivr_flows.engine import Caller
from ivr_flows.graph import dot, mermaid
from ivr_flows.model import Flow
from ivr_flows.simulate import simulate
from ivr_flows.validate import FlowSet, load_flows, sound_names


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    flows = commands.add_parser("flows", help="IVR flows").add_subparsers(dest="action", required=True)
    val = flows.add_parser("validate", help="check flow files: schema, graph, prompts, queues", parents=[common])
    val.add_argument("path", type=Path, nargs="?", help="a flow file or a directory (default: the configured flows)")
    val.add_argument("--sounds", type=Path, action="append", default=[],
                     help="a sound directory (repeatable; default: the sound_dirs setting, HOTLINE_SOUND_DIRS)")
    sim = flows.add_parser("simulate", help="walk a flow as a caller would, without Asterisk", parents=[common])
    sim.add_argument("--caller", required=True)
    sim.add_argument("--dtmf", default="", help="answers to the menus in order, e.g. 1,2,# (empty item = silence)")
    sim.add_argument("--at", help="call time, ISO-8601 (default now)")
    sim.add_argument("--flow", help="flow to start in (default: the configured IVR flow)")
    sim.add_argument("--path", type=Path, help="flow file or directory (default: the configured flows)")
    gra = flows.add_parser("graph", help="draw a flow", parents=[common])
    gra.add_argument("flow", nargs="?", help="flow name (default: the configured IVR flow)")
    gra.add_argument("--format", choices=["mermaid", "dot", "svg"], default="mermaid")
    gra.add_argument("--path", type=Path, help="flow file or directory (default: the configured flows)")
    flows.add_parser("reload", help="ask every running `hotline serve` to reload its flows", parents=[common])
    flows.add_parser("schema", help="print the flow files' JSON Schema (for editors)", parents=[common])


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.action == "validate":
        return validate(args, settings)
    if args.action == "schema":
        print(json.dumps(Flow.model_json_schema(), indent=2, ensure_ascii=False))
        return 0
    if args.action == "reload":
        return asyncio.run(reload(settings))
    flows = load_flows(args.path or flows_dir(settings), None, None)
    if args.action == "graph":
        return graph(args, settings, flows)
    return asyncio.run(simulate_call(args, settings, flows))


def validate(args: argparse.Namespace, settings: Settings) -> int:
    path = args.path or flows_dir(settings)
    directories = [("", p) for p in args.sounds] if args.sounds else sound_directories(settings.sound_dirs)
    sounds = sound_names(directories) if directories else None
    try:
        flows = load_flows(path, sounds, flow_queues(settings))
    except ConfigFileError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        print(f"{len(exc.problems)} problem(s) in {path}", file=sys.stderr)
        return 1
    checked = "prompts checked against " + ", ".join(str(d) for _, d in directories) if sounds else (
        "prompts NOT checked (no sound directory; pass --sounds DIR)")
    print(f"{path}: OK, {len(flows.flows)} flow(s), version {flows.version}; {checked}")
    return 0


def sound_directories(configured: tuple[str, ...]) -> list[tuple[str, Path]]:
    """(prompt-name prefix, directory) from the setting's `DIR` or `PREFIX=DIR` items."""
    out = []
    for item in configured:
        prefix, sep, directory = item.rpartition("=")
        out.append((prefix if sep else "", Path(directory)))
    return out


def _flow_name(args: argparse.Namespace, settings: Settings, flows: FlowSet) -> str | None:
    """The flow the command names (or the configured one); None, said on stderr, if there is none such."""
    name: str = args.flow or settings.ivr_flow
    if name not in flows.flows:
        print(f"hotline: no flow {name!r}; flows: {', '.join(sorted(flows.flows))}", file=sys.stderr)
        return None
    return name


def graph(args: argparse.Namespace, settings: Settings, flows: FlowSet) -> int:
    name = _flow_name(args, settings, flows)
    if name is None:
        return 2
    flow = flows.flows[name]
    if args.format == "mermaid":
        print(mermaid(flow), end="")
        return 0
    if args.format == "dot":
        print(dot(flow), end="")
        return 0
    renderer = shutil.which("dot")
    if renderer is None:
        print("hotline: --format svg needs Graphviz's `dot` (apt-get install graphviz); "
              "or use --format dot / mermaid", file=sys.stderr)
        return 2
    done = subprocess.run([renderer, "-Tsvg"], input=dot(flow), capture_output=True, text=True, check=False)
    if done.returncode != 0:
        print(f"hotline: dot failed: {done.stderr.strip()}", file=sys.stderr)
        return 1
    print(done.stdout, end="")
    return 0


async def simulate_call(args: argparse.Namespace, settings: Settings, flows: FlowSet) -> int:
    policy = load_policy(settings.policy_file)
    at = parse_at(args.at, policy.zone)
    name = _flow_name(args, settings, flows)
    if name is None:
        return 2
    async with open_services(settings, policy) as services:
        identity = await services.lookup.identify(args.caller, at)
    inputs = args.dtmf.split(",") if args.dtmf else []
    print(f"caller {identity.number or args.caller}: tier {identity.tier} ({identity.label}), level {identity.level}, "
          f"QUEUE_PRIO {identity.queue_priority}" + (" [degraded: Redis unavailable]" if identity.degraded else ""))
    print(f"flow {name} version {flows.version}, {at.isoformat(timespec='minutes')}")
    steps, outcome = simulate(flows.flows, name, Caller(identity.to_json(), at.astimezone(policy.zone)), inputs)
    for step in steps:
        print(step)
    if outcome.kind == "transfer":
        print(f"transfer to agents: service {outcome.service}, queue {outcome.queue}, QUEUE_PRIO "
              f"{identity.queue_priority}, skill chain {' > '.join(identity.skill_chain)}")
    else:
        print("hang up")
    return 0


async def reload(settings: Settings) -> int:
    """Ask every running instance to reload and wait for each one's answer: exit 1 when any
    refused the files (it keeps serving the version it had) or none answered."""
    async with open_services(settings) as services:
        reply_to = f"{services.keys.flows_reload}:reply:{uuid.uuid4().hex}"
        async with services.redis.pubsub() as pubsub:
            await pubsub.subscribe(reply_to)
            receivers = int(await services.redis.publish(services.keys.flows_reload, reply_to))
            answers: list[str] = []
            deadline = asyncio.get_running_loop().time() + 10.0
            while len(answers) < receivers and asyncio.get_running_loop().time() < deadline:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if message is not None:
                    answers.append(str(message["data"]))
    refused = [a for a in answers if a.startswith("refused")]
    print(f"reload requested; {receivers} running instance(s) heard it, {len(answers)} answered: "
          + ("; ".join(sorted(set(answers))) or "-"))
    if refused:
        print("hotline: the flows were refused (see the instance's log, or hotline flows validate); "
              "the running version keeps serving", file=sys.stderr)
        return 1
    return 0 if receivers and len(answers) == receivers else 1
