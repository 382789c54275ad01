"""`hotline db ...`: the records database's schema and partitions."""

from __future__ import annotations

import argparse
import asyncio
from datetime import datetime

from hotline.app import SCHEMAS, migrate_records
from hotline.cli.common import EXIT_REFUSED, CliError, records_connection
from hotline.cli.progress import Bars
from hotline.records.partitions import partitions, prune
from hotline_core.db import SchemaError, current_version, expected_version
from hotline_core.policy import load_policy
from hotline_core.settings import Settings


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    db = commands.add_parser("db", help="the records database (PostgreSQL)").add_subparsers(dest="action",
                                                                                              required=True)
    db.add_parser("migrate", help="bring the schema up to date (safe to run again)", parents=[common])
    db.add_parser("status", help="schema version and monthly partitions", parents=[common])
    db.add_parser("prune", help="drop the months past records_retention_months", parents=[common])
    quarantine = db.add_parser("quarantine", help="what the records could not store, newest first, and why",
                               parents=[common])
    quarantine.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")


def run(args: argparse.Namespace, settings: Settings) -> int:
    return asyncio.run(_run(args, settings))


async def _run(args: argparse.Namespace, settings: Settings) -> int:
    today = datetime.now(load_policy(settings.policy_file).zone).date()
    async with records_connection(settings) as conn:
        if args.action == "migrate":
            try:
                with Bars() as bars:
                    applied = await migrate_records(conn, today, bars)
            except SchemaError as exc:
                raise CliError(str(exc), EXIT_REFUSED) from None
            names = ", ".join(f"{m.version:03d}_{m.name}" for m in applied) or "nothing to do"
            print(f"schema version {await current_version(conn)} ({names})")
            return 0
        if args.action == "quarantine":
            if not 1 <= args.limit <= 100_000:
                raise CliError("--limit: from 1 to 100000")
            total = await conn.fetchval("SELECT count(*) FROM records_quarantine")
            rows = await conn.fetch("SELECT at, source, raw, reason FROM records_quarantine ORDER BY id DESC "
                                    "LIMIT $1", args.limit)
            print(f"{total} item(s) in the quarantine" + (f", the newest {len(rows)}:" if rows else ""))
            zone = load_policy(settings.policy_file).zone
            for row in rows:
                print(f"{row['at'].astimezone(zone):%Y-%m-%d %H:%M:%S} {row['source']}: {row['reason']}\n"
                      f"    {row['raw'][:300]}")
            return 0
        if args.action == "prune":
            dropped = await prune(conn, today, settings.records_retention_months)
            print(f"dropped {len(dropped)} partition(s) older than {settings.records_retention_months} months"
                  + (": " + ", ".join(dropped) if dropped else ""))
            return 0
        version = await current_version(conn)
        print(f"schema version {version} (this hotline needs {expected_version(SCHEMAS)})")
        months = sorted({month for _, month in await partitions(conn)})
        print("months: " + (", ".join(m.strftime("%Y-%m") for m in months) or "none"))
        return 0 if version == expected_version(SCHEMAS) else EXIT_REFUSED
