"""`hotline workorders ...`: complaint work orders from the command line (operators on the server
act as supervisors; `--as` names who, for the audit trail)."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
from pathlib import Path
from typing import Any

from hotline.app import Services
from hotline.cli.common import EXIT_REFUSED, CliError, emit, records_pool, redis_services
from hotline.workorders.rules import SPECIAL_CUSTOMERS, STATUSES, Filters, WorkOrderError
from hotline.workorders.service import WorkOrderService
from hotline.workorders.store import WorkOrders, as_json
from hotline.workorders.web import EXPORT_COLUMNS
from hotline_core.export import FORMATS, render
from hotline_core.settings import Settings


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    orders = commands.add_parser("workorders", help="complaint work orders").add_subparsers(dest="action",
                                                                                             required=True)
    create = orders.add_parser("create", help="file a work order for a caller or a call", parents=[common])
    who = create.add_mutually_exclusive_group(required=True)
    who.add_argument("--caller", help="the caller's number (their last call gives the tier)")
    who.add_argument("--linkedid", help="the call's linkedid")
    create.add_argument("--category", required=True)
    create.add_argument("--text", required=True, help="what the customer complains of")
    create.add_argument("--contact", help="where to reach the customer (default: the caller's number)")
    create.add_argument("--as", dest="actor", help="who files it (default: your login name)")
    listing = orders.add_parser("list", help="work orders in dispatch order", parents=[common])
    listing.add_argument("--special", choices=SPECIAL_CUSTOMERS, help="special customer (tier)")
    listing.add_argument("--status", choices=STATUSES)
    listing.add_argument("--category")
    listing.add_argument("--overdue", action="store_true")
    listing.add_argument("--format", choices=FORMATS, default="table")
    listing.add_argument("--output", type=Path)
    move = orders.add_parser("set", help="move an order: set ID status=dispatched [note=...] [reply=...]",
                             parents=[common])
    move.add_argument("id", type=int)
    move.add_argument("changes", nargs="+", metavar="FIELD=VALUE")
    move.add_argument("--as", dest="actor")


def run(args: argparse.Namespace, settings: Settings) -> int:
    return asyncio.run(_run(args, settings))


async def _run(args: argparse.Namespace, settings: Settings) -> int:
    async with records_pool(settings) as pool, redis_services(settings) as services:
        service = WorkOrderService(WorkOrders(pool), services.records, services.policy, services.plan, services.now,
                                   None)
        try:
            return await _act(args, service, services)
        except WorkOrderError as exc:
            raise CliError(str(exc), EXIT_REFUSED if exc.forbidden else 2) from None


async def _act(args: argparse.Namespace, service: WorkOrderService, services: Services) -> int:
    actor = (args.actor or getpass.getuser()) if args.action in ("create", "set") else ""
    if args.action == "create":
        caller, note = await service.caller_of(args.linkedid, args.caller)
        order, _ = await service.create(caller, {"category": args.category, "description": args.text,
                                                 "contact": args.contact}, actor, "supervisor", None)
        if note:
            print(f"note: {note}", file=sys.stderr)
        print(json.dumps(order, ensure_ascii=False, default=str))
        return 0
    if args.action == "set":
        changes = dict(item.partition("=")[::2] for item in args.changes)
        unknown = sorted(set(changes) - {"status", "note", "reply"})
        if unknown or "status" not in changes:
            raise CliError("set ID status=NEW [note=TEXT] [reply=TEXT]" + (f"; unknown {unknown[0]!r}" if unknown
                                                                           else ""))
        order = await service.move(args.id, changes["status"], actor, "supervisor", changes.get("note", ""),
                                   changes.get("reply"))
        print(f"work order {order['id']}: {order['status']}")
        return 0
    filters = Filters(special=args.special, status=args.status, category=args.category, overdue=args.overdue)
    orders: list[dict[str, Any]] = []
    async for rows in service.store.every(filters.checked(), "supervisor", "", None, service.now()):
        orders += [as_json(r, service.now(), services.policy.zone) for r in rows]
    data = render(args.format, EXPORT_COLUMNS, orders, "工单")
    emit(data, args.output, len(orders), "orders")
    return 0
