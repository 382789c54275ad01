"""`hotline report`: offered, answered, service level, ASA, AHT, abandoned, released... by tier,
level, desk, service, agent, hour or day, from the call records."""

from __future__ import annotations

import argparse
import asyncio
from datetime import datetime
from pathlib import Path

from hotline.cli.common import CliError, emit, parse_day, records_connection
from hotline.records.report import Period, ReportError, against_all, build_report, fetch_counts, parse_by
from hotline.workorders.rules import SPECIAL_CUSTOMERS
from hotline.workorders.store import WorkOrders
from hotline_core.export import FORMATS, render
from hotline_core.policy import Policy, load_policy
from hotline_core.settings import Settings

FIGURES = (("offered", "offered"), ("answered", "answered"), ("answer_rate", "answer rate"),
           ("answer_rate_target", "target"), ("below_target", "below"), ("service_level", "service level"),
           ("service_level_excl_short", "SL excl. short abandons"), ("asa_s", "ASA s"), ("aht_s", "AHT s"),
           ("abandoned", "abandoned"), ("short_abandoned", "short abandons"), ("released", "released"),
           ("overflow_share", "overflow"), ("ivr_only", "IVR only"), ("sms_delivered", "SMS delivered"),
           ("surveyed", "surveyed"), ("csat", "satisfaction"), ("fcr", "FCR"))
COMPARED = (("answer_rate_vs_all", "answer rate vs all (points)"), ("aht_vs_all_s", "AHT vs all s"))
PERCENT = frozenset({"answer_rate", "answer_rate_target", "service_level", "service_level_excl_short",
                     "overflow_share", "on_time_reply_rate", "csat", "fcr"})
COMPLAINT_FIGURES = (("orders", "orders"), ("replied", "replied"), ("replied_on_time", "replied on time"),
                     ("on_time_reply_rate", "on-time reply rate"))
KEY_HEADERS = {"category": "category", "tier": "tier", "tier_label": "特殊客户", "level": "level",
               "level_label": "接入级别", "desk": "desk",
               "service": "service", "agent": "agent", "hour": "hour", "day": "day"}


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    rep = commands.add_parser("report", help="service figures from the call records", parents=[common])
    rep.add_argument("--from", dest="first", help="first day, YYYY-MM-DD (default today)")
    rep.add_argument("--to", dest="last", help="last day, included (default: the --from day)")
    rep.add_argument("--by", default="tier", help="tier, level, desk, service, agent, hour, day; comma separated "
                     "(complaints: tier and/or category)")
    rep.add_argument("--what", choices=["calls", "complaints"], default="calls",
                     help="calls (default) or complaint work orders")
    rep.add_argument("--compare", action="store_true",
                     help="each group's answer rate and AHT against the whole hotline's, same period")
    rep.add_argument("--format", choices=FORMATS, default="table")
    rep.add_argument("--output", type=Path, help="write here instead of standard output (xlsx needs it)")



def columns(by: tuple[str, ...], fmt: str) -> list[tuple[str, str]]:
    keys: list[str] = []
    for dim in by:
        keys.append(dim)
        if dim in ("tier", "level"):
            keys.append(f"{dim}_label")
    figures = [f for f in FIGURES if "level" in by or f[0] not in ("answer_rate_target", "below_target")]
    headers = KEY_HEADERS if fmt != "json" else {k: k for k in KEY_HEADERS}
    return [(k, headers[k]) for k in keys] + list(figures)


def run(args: argparse.Namespace, settings: Settings) -> int:
    policy = load_policy(settings.policy_file)
    today = datetime.now(policy.zone).date()
    first = parse_day(args.first, "--from", today)
    last = parse_day(args.last, "--to", first)
    try:
        period = Period.days(first, last, policy)
        if args.what == "complaints":
            by = tuple(d.strip() for d in args.by.split(",") if d.strip())
            if not by or set(by) - {"tier", "category"} or len(set(by)) != len(by):
                raise ReportError(f"--by {args.by!r}: a complaints report goes by tier, category or tier,category")
        else:
            by = parse_by(args.by)
    except ReportError as exc:
        raise CliError(str(exc)) from None
    if args.format == "xlsx" and args.output is None:
        raise CliError("--format xlsx needs --output FILE")
    if args.what == "complaints":
        rows = asyncio.run(_complaints(settings, policy, period, by))
        table_columns = [(k, KEY_HEADERS.get(k, k)) for k in by] + list(COMPLAINT_FIGURES)
        if "tier" in by:
            table_columns.insert(by.index("tier") + 1, ("tier_label", "特殊客户"))
    else:
        rows = asyncio.run(_rows(settings, policy, period, by, args.compare))
        table_columns = columns(by, args.format) + (list(COMPARED) if args.compare else [])
    data = render(args.format, table_columns, rows, f"report {first}..{last}", PERCENT, frozenset({"day"}))
    emit(data, args.output, len(rows), "rows")
    return 0


async def _rows(settings: Settings, policy: Policy, period: Period, by: tuple[str, ...],
                compare: bool = False) -> list[dict[str, object]]:
    async with records_connection(settings) as conn:
        counted = await fetch_counts(conn, policy, period, by)
    rows = build_report(counted, by, policy)
    return against_all(rows, counted, policy) if compare else list(rows)


async def _complaints(settings: Settings, policy: Policy, period: Period,
                      by: tuple[str, ...]) -> list[dict[str, object]]:
    """Complaint orders by tier and category; on-time reply rate = replied by the reply deadline /
    orders filed in the period. Every tier appears, with zeros."""
    async with records_connection(settings) as conn:
        counted = await WorkOrders.complaints(conn, period.start, period.end)
    groups: dict[tuple[object, ...], dict[str, int]] = {}
    for counted_row in counted:
        key = tuple(counted_row[d] for d in by)
        totals = groups.setdefault(key, {"orders": 0, "replied": 0, "replied_on_time": 0})
        for name in totals:
            totals[name] += int(counted_row[name])
    if "tier" in by:
        index = by.index("tier")
        others = {key[:index] + key[index + 1:] for key in groups} or {()}
        for tier in SPECIAL_CUSTOMERS:
            for rest in others:
                groups.setdefault((*rest[:index], tier, *rest[index:]),
                                  {"orders": 0, "replied": 0, "replied_on_time": 0})
    out = []
    order = {t: i for i, t in enumerate(SPECIAL_CUSTOMERS)}
    for key, totals in sorted(groups.items(), key=lambda item: [order.get(str(k), 99) if d == "tier" else str(k)
                                                              for d, k in zip(by, item[0], strict=True)]):
        row: dict[str, object] = dict(zip(by, key, strict=True))
        if "tier" in by:
            row["tier_label"] = policy.tier_label(str(row["tier"]))
        row.update(totals)
        row["on_time_reply_rate"] = round(totals["replied_on_time"] / totals["orders"], 4) if totals["orders"] else None
        out.append(row)
    return out
