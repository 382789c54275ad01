"""`hotline asterisk render`: the shipped Asterisk configuration, filled in for one deployment."""

from __future__ import annotations

import argparse
from pathlib import Path

from asterisk_conf import render
from hotline.cli.common import CliError
from hotline_core.policy import load_policy
from hotline_core.settings import Settings


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    ast = commands.add_parser("asterisk", help="Asterisk configuration").add_subparsers(dest="action", required=True)
    rend = ast.add_parser("render", help="render asterisk_conf/ for a deployment into a directory", parents=[common])
    rend.add_argument("--target", type=Path, required=True, help="directory to write the .conf files into")
    rend.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                      help="deployment value, e.g. SIP_PORT=5060 AGI_HOST=127.0.0.1 (repeatable)")
    rend.add_argument("--agent", action="append", default=[], metavar="NAME:SECRET:CONTACT",
                      help="an agent endpoint and queue member (repeatable); NAME:SECRET: a phone that registers")
    rend.add_argument("--agent-file", type=Path, metavar="FILE",
                      help="agents' phones, a line each: name,secret (registers) or name,secret,contact")


def run(args: argparse.Namespace, settings: Settings) -> int:
    overrides: dict[str, str] = {}
    if settings.ami_secret:  # HOTLINE_AMI_SECRET or HOTLINE_AMI_SECRET_FILE: the bridge's own login
        overrides["AMI_SECRET"] = settings.ami_secret
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            raise CliError(f"--set {item!r}: expected KEY=VALUE")
        overrides[key] = value
    try:
        policy = load_policy(settings.policy_file)
        agents = tuple(render.parse_endpoint(a) for a in args.agent)
        if args.agent_file:
            agents += render.parse_agent_file(_read(args.agent_file), str(args.agent_file))
        names = [a.name for a in agents]
        if twice := sorted({n for n in names if names.count(n) > 1}):
            raise render.RenderError(f"agent(s) given twice: {', '.join(twice)}")
        deployment = render.deployment_from(overrides, agents, render.level_queues(policy))
        rendered = render.render(render.load_templates(), deployment)
    except render.RenderError as exc:
        raise CliError(str(exc)) from None
    render.write(rendered, args.target)
    print(f"{len(rendered)} files written to {args.target}")
    return 0


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(f"--agent-file {path}: {exc}") from None
