"""`hotline agents ...`: the roster and the virtual desks, for supervisors."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from ami_bridge.desks import assign_desks, queue_members
from ami_bridge.roster import Roster, RosterError, edit, parse_roster
from hotline.app import Services
from hotline.cli.common import CliError, emit, parse_at, parse_day, records_connection, records_pool, redis_services
from hotline.records.kpis import COLUMNS as KPI_COLUMNS
from hotline.records.kpis import agent_kpis
from hotline.records.report import Period, ReportError, fetch_counts
from hotline.records.staffing import apply, evaluate, measurement_period
from hotline.web.auth import Sessions
from hotline_core.export import FORMATS, render
from hotline_core.policy import load_policy
from hotline_core.settings import Settings

NEWLINE = b"\n"


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    agents = commands.add_parser("agents", help="agent roster and virtual desks").add_subparsers(
        dest="action", required=True)
    a_imp = agents.add_parser("import", help="replace the roster from CSV (all or nothing)", parents=[common])
    a_imp.add_argument("file", type=Path)
    a_imp.add_argument("--encoding", default="utf-8", help="file encoding, e.g. gbk (default utf-8)")
    a_imp.add_argument("--allow-shrink", action="store_true",
                       help="allow a roster with under half of today's agents (default: refused)")
    agents.add_parser("list", help="the roster", parents=[common])
    a_set = agents.add_parser("set", help="change an agent, e.g. agents set agent1 satisfaction=97%%",
                              parents=[common])
    a_set.add_argument("agent_id")
    a_set.add_argument("changes", nargs="+", metavar="FIELD=VALUE")
    a_rm = agents.add_parser("remove", help="take an agent off the roster", parents=[common])
    a_rm.add_argument("agent_id")
    a_sec = agents.add_parser("secret", help="set the secret an agent signs in to the agent screen with",
                              parents=[common])
    a_sec.add_argument("agent_id", nargs="?")
    a_sec.add_argument("--secret", help="default: read from standard input")
    a_sec.add_argument("--from-file", type=Path, metavar="FILE",
                       help="every agent's secret at once, a line each: agent_id,secret (first-run step)")
    a_desks = agents.add_parser("desks", help="who sits at which virtual desk, and why", parents=[common])
    a_desks.add_argument("--at", help="date-time to judge tenure and seasons at (default now)")
    a_desks.add_argument("--queues", action="store_true", help="also show each level queue's members")
    a_desks.add_argument("--measured", action="store_true",
                         help="the desks the measured KPIs give (last months of records), beside today's")
    a_desks.add_argument("--apply", action="store_true",
                         help="with --measured: put the measured figures into the roster; the bridge re-seats live")
    a_desks.add_argument("--as", dest="applied_by", help="who applies it, for the record (default: your login)")
    a_kpis = agents.add_parser("kpis", help="each agent's measured KPIs and the desk rule's verdict",
                               parents=[common])
    a_kpis.add_argument("--from", dest="first", help="first day, YYYY-MM-DD (default: the policy's months back)")
    a_kpis.add_argument("--to", dest="last", help="last day, included (default today)")
    a_kpis.add_argument("--format", choices=FORMATS, default="table")
    a_kpis.add_argument("--output", type=Path, help="write here instead of standard output (xlsx needs it)")


def run(args: argparse.Namespace, settings: Settings) -> int:
    return asyncio.run(_run(args, settings))


async def _run(args: argparse.Namespace, settings: Settings) -> int:
    async with redis_services(settings, load_policy(settings.policy_file)) as services:
        return await agent_commands(args, services)


async def agent_commands(args: argparse.Namespace, services: Services) -> int:
    roster = services.roster
    if args.action == "import":
        try:
            data = await asyncio.to_thread(Path(args.file).read_bytes)
        except OSError as exc:
            print(f"hotline: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
            return 2
        try:
            text = data.decode(args.encoding)
        except (UnicodeDecodeError, LookupError) as exc:
            line = data[: exc.start].count(NEWLINE) + 1 if isinstance(exc, UnicodeDecodeError) else 0
            where = f" (line {line})" if line else ""
            print(f"{args.file}{where}: not {args.encoding} text; save it as UTF-8 or name its encoding "
                  "with --encoding (e.g. gbk)", file=sys.stderr)
            return 2
        agents, problems = parse_roster(text)
        for problem in problems:
            print(f"{args.file}:{problem.removeprefix('line ')}", file=sys.stderr)
        if problems:
            print(f"{args.file}: REFUSED, nothing changed: {len(problems)} bad row(s)")
            return 1
        if not agents:
            print(f"{args.file}: REFUSED, nothing changed: no agents in the file (the roster would be emptied)")
            return 1
        current = len(await roster.all())
        if len(agents) < current / 2 and not args.allow_shrink:
            print(f"{args.file}: REFUSED, nothing changed: {len(agents)} agents would replace {current} "
                  "(under half: a truncated file?); --allow-shrink if that is meant")
            return 1
        await roster.replace_all(agents)
        print(f"{args.file}: {len(agents)} agents imported")
        return 0
    if args.action == "list":
        for listed in await roster.all():
            # m: measured from the records (agents desks --measured --apply); t: typed in.
            sat = "m" if "satisfaction" in listed.measured else "t"
            fcr = "m" if "first_contact_resolution" in listed.measured else "t"
            print(f"{listed.agent_id:<12} {listed.interface:<16} sat {listed.satisfaction:4.0%}{sat}  fcr "
                  f"{listed.first_contact_resolution:4.0%}{fcr}  since {listed.tenure_start}  {listed.name}  "
                  f"{' '.join(listed.skills)}")
        print("(m: measured from the call records; t: typed in)")
        return 0
    if args.action == "set":
        agent = await roster.get(args.agent_id)
        if agent is None:
            print(f"hotline: no agent {args.agent_id!r}", file=sys.stderr)
            return 1
        changes = dict(item.partition("=")[::2] for item in args.changes)
        try:
            updated = edit(agent, changes)
        except RosterError as exc:
            print(f"hotline: {exc}", file=sys.stderr)
            return 2
        await roster.put(updated)
        print(f"{updated.agent_id}: updated")
        return 0
    if args.action == "secret":
        return await set_secrets(args, services)
    if args.action == "remove":
        removed = await roster.remove(args.agent_id)
        await Sessions(services.redis, services.settings.redis_prefix).remove_agent(args.agent_id)
        print(f"{args.agent_id}: removed" if removed else f"{args.agent_id}: not in the roster")
        return 0 if removed else 1
    if args.action == "kpis":
        return await kpis(args, services)
    if args.measured:
        return await measured_desks(args, services)
    if args.apply:
        print("hotline: --apply goes with --measured", file=sys.stderr)
        return 2
    return await desks(args, services, roster)


MIN_SECRET = 8


def secrets_file(text: str, source: str) -> list[tuple[str, str]]:
    """`agent_id,secret` lines (blank lines and # comments skipped), each checked, the line named."""
    pairs: list[tuple[str, str]] = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        agent_id, sep, secret = (part.strip() for part in line.partition(","))
        if not sep or not agent_id:
            raise ValueError(f"{source}:{number}: expected agent_id,secret")
        if len(secret) < MIN_SECRET:
            raise ValueError(f"{source}:{number}: {agent_id}'s secret needs at least {MIN_SECRET} characters")
        pairs.append((agent_id, secret))
    return pairs


async def set_secrets(args: argparse.Namespace, services: Services) -> int:
    if (args.agent_id is None) == (args.from_file is None):
        print("hotline: name one agent, or give --from-file", file=sys.stderr)
        return 2
    if args.from_file is not None:
        try:
            pairs = secrets_file(await asyncio.to_thread(args.from_file.read_text, encoding="utf-8"),
                                 str(args.from_file))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            print(f"hotline: {exc}", file=sys.stderr)
            return 2
    else:
        pairs = [(args.agent_id, args.secret or sys.stdin.readline().strip())]
        if len(pairs[0][1]) < MIN_SECRET:
            print(f"hotline: a secret needs at least {MIN_SECRET} characters", file=sys.stderr)
            return 2
    # All or nothing: every id must be on the roster before any secret changes.
    missing = [agent_id for agent_id, _ in pairs if await services.roster.get(agent_id) is None]
    if missing:
        print(f"hotline: not on the roster: {', '.join(missing)}", file=sys.stderr)
        return 1
    sessions = Sessions(services.redis, services.settings.redis_prefix)
    for agent_id, secret in pairs:
        await sessions.set_secret(agent_id, secret)
        print(f"{agent_id}: secret set")
    return 0


async def desks(args: argparse.Namespace, services: Services, roster: Roster) -> int:
    policy = services.policy
    at = parse_at(args.at, policy.zone)
    today: date = at.date()
    agents = await roster.all()
    assignment = assign_desks(agents, policy, today)
    rule = policy.desk_rule
    print(f"desk rule: at least {rule.min_qualified_share:.0%} of members with satisfaction >= "
          f"{rule.min_satisfaction:.0%}, first-contact resolution >= {rule.min_first_contact_resolution:.0%}, "
          f"tenure >= {rule.min_tenure_months} months (as of {today})")
    for desk, members in assignment.desks.items():
        spec = policy.desks[desk]
        season = "" if spec.months is None else (" (open this month)" if spec.open_in(at.month) else
                                                 " (closed this month)")
        print(f"\n{desk} {spec.label}: {len(members)}/{spec.size} seats, "
              f"{assignment.qualified_share(desk):.0%} qualified{season}")
        for agent_id in members:
            verdict = assignment.verdicts[agent_id]
            why = "qualified" if verdict.qualified else "not qualified: " + "; ".join(verdict.reasons)
            print(f"  {agent_id:<12} {why}")
    print("\nnot at a virtual desk (general group only):")
    for agent_id in assignment.unseated:
        verdict = assignment.verdicts[agent_id]
        why = "qualified, no seat left" if verdict.qualified else "; ".join(verdict.reasons)
        print(f"  {agent_id:<12} {why}")
    if args.queues:
        print("\nqueue membership (penalty: 0 is rung first):")
        for queue, penalties in queue_members(agents, assignment, policy, at.month).items():
            ordered = sorted(penalties.items(), key=lambda x: x[1])
            print(f"  {queue}: " + ", ".join(f"{member}={penalty}" for member, penalty in ordered))
    return 0


KPI_HEADERS = (("agent", "agent"), ("name", "name"), ("calls", "answered"), ("surveyed", "surveyed"),
               ("csat", "satisfaction"), ("fcr_decided", "FCR decided"), ("fcr", "FCR"), ("aht_s", "AHT s"),
               ("tenure_months", "tenure months"), ("satisfaction_used", "judged sat."), ("fcr_used", "judged FCR"),
               ("typed_in", "typed in"), ("qualified", "qualified"), ("reasons", "why not"))
KPI_PERCENT = frozenset({"csat", "fcr", "satisfaction_used", "fcr_used"})


async def kpis(args: argparse.Namespace, services: Services) -> int:
    policy = services.policy
    today = services.now().astimezone(policy.zone).date()
    last = parse_day(args.last, "--to", today)
    try:
        period = (measurement_period(policy, last) if args.first is None
                  else Period.days(parse_day(args.first, "--from", last), last, policy))
    except ReportError as exc:
        raise CliError(str(exc)) from None
    if args.format == "xlsx" and args.output is None:
        raise CliError("--format xlsx needs --output FILE")
    async with records_connection(services.settings) as conn:
        counts = await fetch_counts(conn, policy, period, ("agent",))
    rows = [k.row() for k in agent_kpis(counts, await services.roster.all(), policy, last)]
    if args.format != "json":
        for row in rows:
            row["reasons"] = "; ".join(row["reasons"])
            row["typed_in"] = ", ".join("sat." if t == "satisfaction" else "FCR" for t in row["typed_in"])
    title = f"agents {period.start.date()}..{(period.end - timedelta(days=1)).date()}"
    emit(render(args.format, KPI_HEADERS if args.format != "json" else [(k, k) for k in KPI_COLUMNS], rows,
                title, KPI_PERCENT), args.output, len(rows), "agents")
    if args.format == "table":
        m = policy.measurement
        print(f"\n{title}. satisfaction = satisfied / surveys answered (from {m.min_surveys}); FCR = resolved / "
              f"decided answered calls (no answered call from the number and no work order within "
              f"{m.fcr_window_hours:g} h; from {m.min_fcr_calls}); AHT = talk time / answered. Below those samples "
              "the typed-in figure is judged, marked (typed in).")
    return 0



async def measured_desks(args: argparse.Namespace, services: Services) -> int:
    policy = services.policy
    at = parse_at(args.at, policy.zone)
    today = at.date()
    if args.apply:
        who = args.applied_by or getpass.getuser()
        async with records_pool(services.settings) as pool:
            evaluation = await apply(pool, services.roster, policy, today, who, datetime.now(UTC))
        assert evaluation is not None  # only a scheduled run (a period key) can find it done
    else:
        async with records_connection(services.settings) as conn:
            evaluation = await evaluate(conn, await services.roster.all(), policy, today)
    period = evaluation.period
    print(f"measured over {period.start.date()}..{(period.end - timedelta(days=1)).date()} "
          f"(satisfaction from {policy.measurement.min_surveys} surveys, FCR from "
          f"{policy.measurement.min_fcr_calls} decided calls; below that the typed-in figure stands)")
    for desk in evaluation.measured.desks:
        spec = policy.desks[desk]
        now, then = evaluation.today, evaluation.measured
        print(f"{desk} {spec.label}: today {len(now.desks[desk])} seated, {now.qualified_share(desk):.0%} qualified; "
              f"measured {len(then.desks[desk])} seated, {then.qualified_share(desk):.0%} qualified")
    print("\nmoves:" if evaluation.changes else "\nno agent changes desk")
    for change in evaluation.changes:
        print(f"  {change.agent:<12} {change.leaves or '(general only)'} -> {change.joins or '(general only)'}: "
              f"{change.why}")
    typed = [a.agent_id for a in evaluation.agents if len(a.measured) < 2]
    if typed:
        print(f"\ntyped-in figures still judged (too little measured): {', '.join(typed)}")
    if args.apply:
        print(f"\napplied by {who}: the roster holds the measured figures; the AMI bridge re-seats the desks "
              f"within {services.settings.desk_reconcile_s:g} s")
    else:
        print("\nnothing changed: --apply puts these figures into the roster")
    return 0
