"""`hotline flows ...`: what telephony engineers run on flow files."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
from datetime import datetime
from pathlib import Path

from hotline.app import open_services, reload_channel
from hotline.policy import load_policy
from hotline.settings import Settings
from hotline.stack.asterisk import default_root, sound_dirs
from hotline.yamlpos import ConfigFileError
from ivr_flows.engine import Caller
from ivr_flows.graph import dot, mermaid
from ivr_flows.model import Flow
from ivr_flows.simulate import simulate
from ivr_flows.validate import FlowSet, load_flows, queue_names, sound_names


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.action == "validate":
        return validate(args, settings)
    if args.action == "schema":
        print(json.dumps(Flow.model_json_schema(), indent=2, ensure_ascii=False))
        return 0
    if args.action == "reload":
        return asyncio.run(reload(settings))
    flows = load_flows(args.path or settings.flows_dir, None, None)
    if args.action == "graph":
        return graph(args, settings, flows)
    return asyncio.run(simulate_call(args, settings, flows))


def validate(args: argparse.Namespace, settings: Settings) -> int:
    path = args.path or settings.flows_dir
    directories = [("", p) for p in args.sounds] if args.sounds else _default_sound_dirs()
    sounds = sound_names(directories) if directories else None
    queues = queue_names(settings.queues_conf) if settings.queues_conf.exists() else None
    try:
        flows = load_flows(path, sounds, queues)
    except ConfigFileError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        print(f"{len(exc.problems)} problem(s) in {path}", file=sys.stderr)
        return 1
    checked = "prompts checked against " + ", ".join(str(d) for _, d in directories) if sounds else (
        "prompts NOT checked (no sound directory; pass --sounds DIR)")
    print(f"{path}: OK, {len(flows.flows)} flow(s), version {flows.version}; {checked}")
    return 0


def _default_sound_dirs() -> list[tuple[str, Path]]:
    if os.environ.get("HOTLINE_SOUND_DIRS"):
        return [("", Path(p)) for p in os.environ["HOTLINE_SOUND_DIRS"].split(":") if p]
    root = default_root()
    return sound_dirs(root) if root.exists() else []


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
    at = datetime.fromisoformat(args.at) if args.at else datetime.now(policy.zone)
    at = at if at.tzinfo else at.replace(tzinfo=policy.zone)
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
    async with open_services(settings) as services:
        receivers = await services.redis.publish(reload_channel(settings), "reload")
    print(f"reload requested; {receivers} running instance(s) heard it")
    return 0
