"""`hotline tiers ...`: the tier tables in Redis."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from hotline.app import Services
from hotline.cli.common import EXIT_REFUSED, CliError, parse_at, redis_services
from hotline.cli.progress import Bars
from hotline_core.policy import load_policy
from hotline_core.settings import Settings
from tier_lookup.importer import ImportOptions, Mode, import_table
from tier_lookup.store import TableBusy
from tier_lookup.tables import TABLES, RowContext


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    tiers = commands.add_parser("tiers", help="tier tables in Redis").add_subparsers(dest="action", required=True)
    imp = tiers.add_parser("import", help="import a table from CSV (header row required)", parents=[common])
    imp.add_argument("table", choices=sorted(TABLES))
    imp.add_argument("file", type=Path, help="CSV file")
    imp.add_argument("--mode", choices=[m.value for m in Mode], default=Mode.REPLACE.value,
                     help="replace: atomic swap of the whole table (default); upsert: add/overwrite rows; "
                          "delete: remove the listed numbers")
    imp.add_argument("--skip-bad", action="store_true",
                     help="apply the valid rows even if some are rejected (default: refuse the whole file)")
    imp.add_argument("--allow-shrink", action="store_true",
                     help="allow a replace that leaves the table with under half of its rows")
    imp.add_argument("--encoding", default="utf-8", help="file encoding, e.g. gbk (default utf-8)")

    look = tiers.add_parser("lookup", help="resolve a caller's identity", parents=[common])
    look.add_argument("number")
    look.add_argument("--at", help="call time, ISO-8601 (default now; no offset means the policy's time zone)")
    look.add_argument("--json", action="store_true", help="one JSON object")

    unlock = tiers.add_parser("unlock", help="clear the import lock a killed import left behind", parents=[common])
    unlock.add_argument("table", choices=sorted(TABLES))

    stats = tiers.add_parser("stats", help="row counts and memory per table", parents=[common])
    stats.add_argument("--json", action="store_true")


def run(args: argparse.Namespace, settings: Settings) -> int:
    return asyncio.run(_run(args, settings))


async def _run(args: argparse.Namespace, settings: Settings) -> int:
    async with redis_services(settings, load_policy(settings.policy_file)) as services:
        try:
            if args.action == "import":
                return await _import(args, services)
            if args.action == "lookup":
                return await _lookup(args, services)
            if args.action == "unlock":
                cleared = await services.store.unlock(args.table)
                print(f"{args.table}: lock cleared" if cleared else f"{args.table}: was not locked")
                return 0
            return await _stats(args, services)
        except TableBusy as exc:
            raise CliError(str(exc), EXIT_REFUSED) from None


def row_context(services: Services) -> RowContext:
    return RowContext.for_policy(services.policy, services.plan)


async def _import(args: argparse.Namespace, services: Services) -> int:
    options = ImportOptions(Mode(args.mode), args.skip_bad, args.allow_shrink, args.encoding)
    try:
        await asyncio.to_thread(_check_readable, args.file)
    except OSError as exc:
        raise CliError(f"cannot read {args.file}: {exc.strerror}") from None
    # The file itself, not its bytes: a replace streams it (a 100 MB file is never held whole).
    with Bars(in_bytes=frozenset({"reading"})) as bars:
        report = await import_table(services.store, args.table, args.file, str(args.file), row_context(services),
                                    options, bars)
    for error in report.errors:
        print(error.located(str(args.file)), file=sys.stderr)
    if report.rejected > len(report.errors):
        print(f"{args.file}: ... and {report.rejected - len(report.errors)} more rejected rows", file=sys.stderr)
    print(report.summary())
    return 0 if report.ok else EXIT_REFUSED


def _check_readable(path: Path) -> None:
    with path.open("rb") as stream:
        stream.read(1)


async def _lookup(args: argparse.Namespace, services: Services) -> int:
    at = parse_at(args.at, services.policy.zone) if args.at else None
    identity = await services.lookup.identify(args.number, at)
    if args.json:
        print(json.dumps(identity.to_json(), ensure_ascii=False))
        return 0
    rows: list[tuple[str, Any]] = [
        ("number", identity.number or "(withheld or invalid)"),
        ("tier", f"{identity.tier} ({identity.label})"),
        ("brand", f"{identity.brand} ({identity.brand_label})"),
        ("level", f"{identity.level} ({identity.level_label})"),
        ("queue priority", identity.queue_priority),
        ("skill chain", " > ".join(identity.skill_chain)),
        ("greeting", identity.greeting or "-"),
        ("matched", ", ".join(identity.matched) or "-"),
        ("flags", ", ".join(f for f in ("redlist", "blacklist") if getattr(identity, f)) or "-"),
        ("degraded", "yes (Redis unavailable)" if identity.degraded else "no"),
    ]
    for name, value in rows:
        print(f"{name:>15}: {value}")
    return 0


async def _stats(args: argparse.Namespace, services: Services) -> int:
    stats = await services.store.stats()
    if args.json:
        out = [{**dataclasses.asdict(s), "bytes_per_row": round(s.bytes_per_row, 1)} for s in stats]
        print(json.dumps(out, ensure_ascii=False))
        return 0
    if not stats:
        print("no tables imported yet")
        return 0
    zone = services.policy.zone
    # The operator's time, as everything else a person reads (the JSON keeps UTC ISO 8601).
    print(f"{'table':<10} {'rows':>10} {'memory':>12} {'bytes/row':>9} {'buckets':>8}  {'imported':<25}  source")
    for s in stats:
        at = s.imported
        when = at.astimezone(zone).isoformat(sep=" ", timespec="seconds") if at else "-"
        print(f"{s.table:<10} {s.rows:>10} {s.memory_bytes:>12} {s.bytes_per_row:>9.1f} {s.buckets:>8}  "
              f"{when:<25}  {s.source}")
    return 0
