"""`hotline sms ...`: what became of the SMS to callers, and who wants none."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from hotline.app import Services
from hotline.cli.common import CliError, redis_services
from hotline.sms.worker import requeue_dead, status_counts
from hotline_core.numbers import mask_number, normalize_number
from hotline_core.settings import Settings


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    sms = commands.add_parser("sms", help="SMS to callers").add_subparsers(dest="action", required=True)
    sms.add_parser("status", help="pending, sent, delivered, failed and dead-letter counts", parents=[common])
    sms.add_parser("dead", help="list the dead letters (jobs that kept failing)", parents=[common])
    requeue = sms.add_parser("requeue", help="send dead letters back to be sent (after a long outage)",
                             parents=[common])
    requeue.add_argument("entries", nargs="*", metavar="ENTRY_ID", help="dead-letter ids (default: --all)")
    requeue.add_argument("--all", action="store_true", help="every dead letter")
    opt = sms.add_parser("optout", help="numbers that get no post-call SMS", parents=[common])
    opt.add_argument("change", choices=["add", "remove", "list"])
    opt.add_argument("number", nargs="?")


def run(args: argparse.Namespace, settings: Settings) -> int:
    return asyncio.run(_run(args, settings))


async def _run(args: argparse.Namespace, settings: Settings) -> int:
    async with redis_services(settings) as services:
        return await sms_commands(args, services)


async def sms_commands(args: argparse.Namespace, services: Services) -> int:
    redis, keys = services.redis, services.keys
    if args.action == "status":
        counts = await status_counts(redis, services.settings.redis_prefix)
        print("  ".join(f"{name} {value}" for name, value in counts.items()))
        return 0
    if args.action == "requeue":
        if not args.entries and not args.all:
            raise CliError("name the dead letters to requeue (hotline sms dead lists them), or --all")
        moved = await requeue_dead(redis, services.settings.redis_prefix, None if args.all else args.entries)
        print(f"{moved} SMS back in the queue")
        return 0
    if args.action == "dead":
        entries: Any = await redis.xrange(keys.sms_dead)
        for entry_id, fields in entries:
            print(f"{entry_id}  job {fields.get('job')}  to {mask_number(str(fields.get('number', '')))}  "
                  f"after {fields.get('attempts')} attempt(s): {fields.get('error')}")
        return 0
    if args.change == "list":
        members: Any = await redis.smembers(keys.sms_optout)
        for member in sorted(members):
            print(member)
        return 0
    number = normalize_number(args.number or "", services.plan)
    if number is None:
        raise CliError(f"{args.number!r} is not a subscriber number")
    if args.change == "add":
        await redis.sadd(keys.sms_optout, number)
    else:
        await redis.srem(keys.sms_optout, number)
    print(f"{number}: {'opted out of' if args.change == 'add' else 'back on'} post-call SMS")
    return 0
