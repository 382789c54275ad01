"""`hotline users ...`: complaint handlers and supervisors who sign in to the pages (agents sign
in with the roster's ids: `hotline agents secret`)."""

from __future__ import annotations

import argparse
import asyncio
import sys

from hotline.cli.common import EXIT_REFUSED, CliError, redis_services
from hotline.web.auth import STAFF_ROLES, Sessions
from hotline_core.settings import Settings


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    users = commands.add_parser("users", help="handlers and supervisors (sign-in to the pages)").add_subparsers(
        dest="action", required=True)
    add = users.add_parser("add", help="add a user or change their role or secret", parents=[common])
    add.add_argument("user")
    add.add_argument("--role", choices=STAFF_ROLES, required=True)
    add.add_argument("--secret", help="default: read from standard input")
    rm = users.add_parser("remove", help="remove a user", parents=[common])
    rm.add_argument("user")
    users.add_parser("list", help="users and their roles", parents=[common])


def run(args: argparse.Namespace, settings: Settings) -> int:
    return asyncio.run(_run(args, settings))


async def _run(args: argparse.Namespace, settings: Settings) -> int:
    async with redis_services(settings) as services:
        sessions = Sessions(services.redis, settings.redis_prefix)
        if args.action == "list":
            for user, role in sorted((await sessions.staff()).items()):
                print(f"{user:<16} {role}")
            return 0
        if args.action == "remove":
            removed = await sessions.remove_staff(args.user)
            print(f"{args.user}: removed" if removed else f"{args.user}: no such user")
            return 0 if removed else EXIT_REFUSED
        if await services.redis.hexists(services.keys.roster, args.user):
            raise CliError(f"{args.user!r} is an agent on the roster; pick another id for a {args.role}")
        secret = args.secret or sys.stdin.readline().strip()
        if len(secret) < 8:
            raise CliError("a secret needs at least 8 characters")
        await sessions.set_staff(args.user, args.role, secret)
        print(f"{args.user}: {args.role}")
        return 0
