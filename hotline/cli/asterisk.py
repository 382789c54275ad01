"""`hotline asterisk render`: the shipped Asterisk configuration, filled in for one deployment."""

from __future__ import annotations

import argparse
import os
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
                      help="an agent endpoint and queue member (repeatable)")


def run(args: argparse.Namespace, settings: Settings) -> int:
    overrides: dict[str, str] = {}
    if os.environ.get("HOTLINE_AMI_SECRET"):
        overrides["AMI_SECRET"] = os.environ["HOTLINE_AMI_SECRET"]
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            raise CliError(f"--set {item!r}: expected KEY=VALUE")
        overrides[key] = value
    try:
        policy = load_policy(settings.policy_file)
        deployment = render.deployment_from(overrides, tuple(render.parse_endpoint(a) for a in args.agent),
                                            render.level_queues(policy))
        rendered = render.render(render.load_templates(), deployment)
    except render.RenderError as exc:
        raise CliError(str(exc)) from None
    render.write(rendered, args.target)
    print(f"{len(rendered)} files written to {args.target}")
    return 0
