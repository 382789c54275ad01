"""`hotline policy check`: validate an operator policy file before it goes live."""

from __future__ import annotations

import argparse
from pathlib import Path

from hotline_core.policy import load_policy
from hotline_core.settings import Settings


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    pol = commands.add_parser("policy", help="operator policy").add_subparsers(dest="action", required=True)
    check = pol.add_parser("check", help="validate a policy file", parents=[common])
    check.add_argument("file", type=Path, nargs="?", help="default: the configured policy file")


def run(args: argparse.Namespace, settings: Settings) -> int:
    path: Path = args.file or settings.policy_file
    policy = load_policy(path)
    print(f"{path}: OK ({len(policy.levels)} levels, {len(policy.access_rules)} access rules, "
          f"{len(policy.desks)} desks)")
    return 0
