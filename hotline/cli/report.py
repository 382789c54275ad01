"""`hotline report`: offered, answered, service level, ASA, AHT, abandoned, released... by tier,
level, desk, service, agent, hour or day, from the call records."""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import date, datetime
from pathlib import Path

from hotline.cli.common import CliError, records_connection
from hotline.records.export import FORMATS, render
from hotline.records.report import Period, ReportError, build_report, fetch_counts, parse_by
from hotline_core.policy import Policy, load_policy
from hotline_core.settings import Settings

FIGURES = (("offered", "offered"), ("answered", "answered"), ("answer_rate", "answer rate"),
           ("answer_rate_target", "target"), ("below_target", "below"), ("service_level", "service level"),
           ("service_level_excl_short", "SL excl. short abandons"), ("asa_s", "ASA s"), ("aht_s", "AHT s"),
           ("abandoned", "abandoned"), ("short_abandoned", "short abandons"), ("released", "released"),
           ("overflow_share", "overflow"), ("ivr_only", "IVR only"), ("sms_delivered", "SMS delivered"))
PERCENT = frozenset({"answer_rate", "answer_rate_target", "service_level", "service_level_excl_short",
                     "overflow_share"})
KEY_HEADERS = {"tier": "tier", "tier_label": "特殊客户", "level": "level", "level_label": "接入级别", "desk": "desk",
               "service": "service", "agent": "agent", "hour": "hour", "day": "day"}


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    rep = commands.add_parser("report", help="service figures from the call records", parents=[common])
    rep.add_argument("--from", dest="first", help="first day, YYYY-MM-DD (default today)")
    rep.add_argument("--to", dest="last", help="last day, included (default: the --from day)")
    rep.add_argument("--by", default="tier", help="tier, level, desk, service, agent, hour, day; comma separated")
    rep.add_argument("--format", choices=FORMATS, default="table")
    rep.add_argument("--output", type=Path, help="write here instead of standard output (xlsx needs it)")


def _day(text: str | None, option: str, default: date) -> date:
    if text is None:
        return default
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise CliError(f"{option} {text!r} is not a date (YYYY-MM-DD)") from None


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
    first = _day(args.first, "--from", today)
    last = _day(args.last, "--to", first)
    try:
        by = parse_by(args.by)
        period = Period.days(first, last, policy)
    except ReportError as exc:
        raise CliError(str(exc)) from None
    if args.format == "xlsx" and args.output is None:
        raise CliError("--format xlsx needs --output FILE")
    rows = asyncio.run(_rows(settings, policy, period, by))
    data = render(args.format, columns(by, args.format), rows, f"report {first}..{last}", PERCENT)
    if args.output:
        args.output.write_bytes(data)
        print(f"{len(rows)} rows written to {args.output}")
    else:
        sys.stdout.buffer.write(data)
    return 0


async def _rows(settings: Settings, policy: Policy, period: Period, by: tuple[str, ...]) -> list[dict[str, object]]:
    async with records_connection(settings) as conn:
        return build_report(await fetch_counts(conn, policy, period, by), by, policy)
