"""`hotline calls why NUMBER|LINKEDID`: the routing story of one call, from the call records."""

from __future__ import annotations

import argparse
import asyncio
import json

from hotline.cli.common import EXIT_REFUSED, records_connection
from hotline.records.why import find_call, story_json, story_text
from hotline_core.numbers import NumberPlan, normalize_number
from hotline_core.policy import load_policy
from hotline_core.settings import Settings


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    calls = commands.add_parser("calls", help="the call records").add_subparsers(dest="action", required=True)
    why = calls.add_parser("why", help="why this caller waited: the whole routing story of a call",
                           parents=[common])
    why.add_argument("call", metavar="NUMBER|LINKEDID", help="a linkedid, or a number (its last call)")
    why.add_argument("--json", action="store_true", help="one JSON object")


def run(args: argparse.Namespace, settings: Settings) -> int:
    return asyncio.run(_why(args, settings))


async def _why(args: argparse.Namespace, settings: Settings) -> int:
    policy = load_policy(settings.policy_file)
    number = normalize_number(args.call, NumberPlan(settings.country_code, settings.region))
    async with records_connection(settings) as conn:
        call = await find_call(conn, args.call, number)
    if call is None:
        print(f"hotline: no call on record for {args.call!r}")
        return EXIT_REFUSED
    story = story_json(call, policy.zone, policy.everyone_group)
    print(json.dumps(story, ensure_ascii=False) if args.json else story_text(story, policy.tiers.precedence))
    return 0
