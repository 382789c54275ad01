"""`hotline whatif`: each level's service predicted before a policy or roster change goes live.

    hotline whatif --traffic FILE [--roster FILE | --agents N] [--policy FILE] [--at DATE]
                   [--replications N] [--seed S] [--format table|json|json-full] [--plot FILE]
                   [--compare-policy FILE | --compare-roster FILE | --compare-agents N]
    hotline whatif staff --traffic FILE [--policy FILE] [--at DATE] [--max-agents N] [--plot FILE]
    hotline whatif schema
`--from-records FROM..TO` takes the traffic from the call records of those days instead.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from datetime import date
from pathlib import Path
from types import ModuleType
from typing import Any

from ami_bridge.roster import Agent, parse_roster
from hotline.cli.common import CliError, parse_at, records_connection, redis_services
from hotline.cli.progress import Bars
from hotline.records.demand import hourly_demand
from hotline.records.report import Period, ReportError
from hotline.whatif.run import Comparison, compare, staff
from hotline.whatif.run import run as run_scenario
from hotline.whatif.setup import Setup, setup_from_roster, setup_with_agents
from hotline.whatif.summary import Estimate, Outcome
from hotline.whatif.traffic import Traffic, load_traffic, traffic_from_demand, traffic_schema
from hotline_core.policy import Policy, load_policy
from hotline_core.settings import Settings


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    w = commands.add_parser("whatif", help="predict each level's service before a policy or roster change",
                            parents=[common], description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    w.add_argument("action", nargs="?", choices=["run", "staff", "schema"], default="run",
                   help="run (default): simulate; staff: the fewest agents meeting every target; schema: the "
                        "traffic file's JSON Schema")
    source = w.add_mutually_exclusive_group()
    source.add_argument("--traffic", type=Path, help="traffic file (YAML; see `hotline whatif schema`)")
    source.add_argument("--from-records", metavar="FROM..TO", help="traffic from the call records of these days")
    agents = w.add_mutually_exclusive_group()
    agents.add_argument("--roster", type=Path, help="roster CSV (as `hotline agents import`); default: the live roster")
    agents.add_argument("--agents", type=int, help="N identical agents of the general group instead of a roster")
    w.add_argument("--policy", type=Path, help="policy to simulate (default: the configured policy)")
    w.add_argument("--at", help="date the desks and seasons are judged at (default today)")
    w.add_argument("--replications", type=int, default=10, help="independent runs (default 10)")
    w.add_argument("--seed", type=int, default=1, help="random seed (default 1): same seed, same callers")
    w.add_argument("--format", choices=["table", "json", "json-full"], default="table",
                   help="json: one object per level; json-full: levels, desks and the scenario")
    w.add_argument("--plot", type=Path, help="write a picture (.png or .svg)")
    w.add_argument("--compare-policy", type=Path, help="also simulate this policy on the same callers")
    other = w.add_mutually_exclusive_group()
    other.add_argument("--compare-roster", type=Path, help="also simulate this roster on the same callers")
    other.add_argument("--compare-agents", type=int, help="also simulate N identical agents on the same callers")
    w.add_argument("--max-agents", type=int, default=2000, help="staff: search no further (default 2000)")


def run(args: argparse.Namespace, settings: Settings) -> int:
    # matplotlib is imported here, not with the CLI: it costs every `hotline` command (the
    # service's start among them) half a second otherwise.
    from hotline.whatif import plot

    if args.action == "schema":
        print(json.dumps(traffic_schema(), indent=2, ensure_ascii=False))
        return 0
    if args.replications < 2 or args.replications > 1000:
        raise CliError("--replications: between 2 and 1000 (an interval needs at least two)")
    if args.plot is not None:
        try:
            plot.check_plot_path(args.plot)
        except ValueError as exc:
            raise CliError(str(exc)) from None
    policy = load_policy(args.policy or settings.policy_file)
    on = parse_at(args.at, policy.zone).date()
    traffic = _traffic(args, settings, policy)
    if args.action == "staff":
        return _staff(args, policy, traffic, on, plot)
    setup = _setup(args.roster, args.agents, policy, on, settings)
    if args.compare_policy or args.compare_roster or args.compare_agents is not None:
        other_policy = load_policy(args.compare_policy) if args.compare_policy else policy
        other_traffic = _traffic(args, settings, other_policy) if args.compare_policy else traffic
        if args.compare_roster or args.compare_agents is not None:
            other = _setup(args.compare_roster, args.compare_agents, other_policy, on, settings)
        else:
            other = _setup(args.roster, args.agents, other_policy, on, settings)
        if [q.level for q in other.queues] != [q.level for q in setup.queues]:
            raise CliError("the two policies have different access levels: compare policies that route the same "
                           "levels (change priorities, desks, waits, seasons)")
        with Bars() as bars:
            result = compare((setup, traffic), (other, other_traffic), args.replications, args.seed, bars)
        _print_comparison(result, args.format, _name(args, "a"), _name(args, "b"))
        if args.plot:
            plot.service_levels([("A: " + _name(args, "a"), result.a), ("B: " + _name(args, "b"), result.b)], args.plot,
                           "service level within each level's threshold, A vs B on the same callers")
        return 0
    with Bars() as bars:
        outcome = run_scenario(setup, traffic, args.replications, args.seed, bars)
    _print_outcome(outcome, traffic, args.format)
    if args.plot:
        plot.service_levels([(setup.description, outcome)], args.plot, "service level within each level's threshold")
    return 0


def _name(args: argparse.Namespace, which: str) -> str:
    """The scenario as the command line named it: policy and roster (or agents)."""
    policy = str(args.policy or "the policy")
    staffing = str(args.roster or (f"{args.agents} agents" if args.agents is not None else "the live roster"))
    if which == "b":
        policy = str(args.compare_policy or policy)
        if args.compare_roster or args.compare_agents is not None:
            staffing = str(args.compare_roster or f"{args.compare_agents} agents")
    return f"{policy}, {staffing}"


def _traffic(args: argparse.Namespace, settings: Settings, policy: Policy) -> Traffic:
    if args.traffic:
        return load_traffic(args.traffic, policy)
    if not args.from_records:
        raise CliError("give --traffic FILE or --from-records FROM..TO")
    first, sep, last = args.from_records.partition("..")
    try:
        period = Period.days(date.fromisoformat(first), date.fromisoformat(last if sep else first), policy)
    except ValueError:
        raise CliError(f"--from-records {args.from_records!r}: give FROM..TO as YYYY-MM-DD..YYYY-MM-DD") from None
    except ReportError as exc:
        raise CliError(str(exc)) from None

    async def fetch() -> list[Any]:
        async with records_connection(settings) as conn:
            return await hourly_demand(conn, period, policy.timezone)

    rows = asyncio.run(fetch())
    days = (period.end.date() - period.start.date()).days
    demand = [(r.level, r.hour, r.calls, r.answered, r.talk_s, r.wait_s, r.abandoned) for r in rows]
    return traffic_from_demand(demand, days, policy, f"call records {args.from_records}")


def _setup(roster: Path | None, agents: int | None, policy: Policy, on: date, settings: Settings) -> Setup:
    if agents is not None:
        if not 1 <= agents <= 100_000:
            raise CliError("--agents: between 1 and 100000")
        return setup_with_agents(policy, agents, on)
    listed = _roster_file(roster) if roster else _live_roster(settings)
    if not listed:
        raise CliError("the roster is empty: give --roster FILE or --agents N")
    return setup_from_roster(policy, listed, on)


def _roster_file(path: Path) -> list[Agent]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise CliError(f"{path}: not UTF-8 text (convert it, or import it with `hotline agents import --encoding`)"
                       ) from None
    agents, problems = parse_roster(text)
    if problems:
        raise CliError(f"{path}: {len(problems)} bad row(s)\n" + "\n".join(f"{path}:{p.removeprefix('line ')}"
                                                                           for p in problems))
    return agents


def _live_roster(settings: Settings) -> list[Agent]:
    async def read() -> list[Agent]:
        async with redis_services(settings) as services:
            return await services.roster.all()

    return asyncio.run(read())


def _staff(args: argparse.Namespace, policy: Policy, traffic: Traffic, on: date, plot: ModuleType) -> int:
    desks = {name: desk.size for name, desk in policy.desks.items() if desk.size and desk.open_in(on.month)}
    with Bars() as bars:
        plan = staff(lambda n, layout: setup_with_agents(policy, n, on, layout), desks, traffic, args.replications,
                     args.seed, args.max_agents, bars)
    if args.format == "table":
        if plan.total is None or plan.best is None:
            print(f"no staffing up to {args.max_agents} agents meets every level's target")
        else:
            seats = ", ".join(f"{desk} {n} (policy {desks[desk]})" for desk, n in plan.desks.items()) or "none open"
            print(f"fewest agents meeting every level's target: {plan.total}")
            print(f"virtual desk seats needed at that total: {seats}; the rest in {policy.everyone_group}")
            print()
            _print_outcome(plan.best, traffic, "table")
        print()
        print("agents  " + "  ".join(f"{level.level[:16]:>16}" for level in plan.curve[0][1].levels))
        for n, outcome in plan.curve:
            print(f"{n:>6}  " + "  ".join(f"{level.service_level.mean:>16.1%}" for level in outcome.levels))
    else:
        print(json.dumps({"total": plan.total, "desks": plan.desks,
                          "curve": [{"agents": n, "levels": [lv.to_json() for lv in o.levels]} for n, o in plan.curve]},
                         ensure_ascii=False, indent=2))
    if args.plot:
        plot.staffing_curve(plan.curve, args.plot, "service level against staffing", plan.total)
    return 0 if plan.total is not None else 1


def _ci(estimate: Estimate, percent: bool = True) -> str:
    if percent:
        return f"{estimate.mean:6.1%} [{estimate.low:.1%}, {estimate.high:.1%}]"
    return f"{estimate.mean:6.1f} [{estimate.low:.1f}, {estimate.high:.1f}]"


def _print_outcome(outcome: Outcome, traffic: Traffic, fmt: str) -> None:
    if fmt == "json":
        print(json.dumps([level.to_json() for level in outcome.levels], ensure_ascii=False, indent=2))
        return
    if fmt == "json-full":
        print(json.dumps(_full(outcome, traffic), ensure_ascii=False, indent=2))
        return
    print(f"{outcome.setup.description}; traffic {traffic.source}, {traffic.hours:g} h; {outcome.replications} "
          f"replications ({outcome.calls:,} callers); mean [95% interval]")
    print(f"{'level':<18} {'offered':>9} {'service level':>26} {'target':>9} {'ASA s':>22} {'abandoned':>20} "
          f"{'released':>20}")
    for level in outcome.levels:
        if level.offered.mean == 0:
            continue
        verdict = "met" if level.meets_target else "MISSED"
        print(f"{level.level:<18} {level.offered.mean:>9.0f} {_ci(level.service_level):>26} "
              f"{level.target:>4.0%} {verdict:<6}{_ci(level.asa_s, False):>20} {_ci(level.abandoned, False):>20} "
              f"{_ci(level.released, False):>20}")
    print()
    print(f"{'desk':<18} {'agents':>6} {'occupancy':>26}")
    for desk in outcome.desks:
        print(f"{desk.desk:<18} {desk.agents:>6} {_ci(desk.occupancy):>26}")


def _full(outcome: Outcome, traffic: Traffic) -> dict[str, Any]:
    return {"scenario": outcome.setup.description, "traffic": traffic.source, "hours": traffic.hours,
            "replications": outcome.replications, "levels": [level.to_json() for level in outcome.levels],
            "desks": [desk.to_json() for desk in outcome.desks]}


def _print_comparison(result: Comparison, fmt: str, a: str, b: str) -> None:
    if fmt != "table":
        print(json.dumps({
            "a": {"name": a, "levels": [lv.to_json() for lv in result.a.levels],
                  "desks": [d.to_json() for d in result.a.desks]},
            "b": {"name": b, "levels": [lv.to_json() for lv in result.b.levels],
                  "desks": [d.to_json() for d in result.b.desks]},
            "differences": [{"level": d.level, "service_level": d.service_level.rounded(4),
                             "service_level_ci": d.service_level.interval(), "asa_s": d.asa_s.rounded(2),
                             "asa_s_ci": d.asa_s.interval(2), "significant": d.significant}
                            for d in result.differences]}, ensure_ascii=False, indent=2))
        return
    print(f"A: {a}\nB: {b}\nsame callers in both (common random numbers), {result.a.replications} replications; "
          "difference B - A with its paired 95% interval")
    print(f"{'level':<18} {'offered':>8} {'SL A':>7} {'SL B':>7} {'B - A':>28} {'target':>7} {'ASA A':>7} {'ASA B':>7}")
    for la, lb, diff in zip(result.a.levels, result.b.levels, result.differences, strict=True):
        if la.offered.mean == 0:
            continue
        change = f"{diff.service_level.mean:+.1%} [{diff.service_level.low:+.1%}, {diff.service_level.high:+.1%}]"
        mark = "" if diff.significant else " (noise)"
        print(f"{la.level:<18} {la.offered.mean:>8.0f} {la.service_level.mean:>7.1%} {lb.service_level.mean:>7.1%} "
              f"{change + mark:>28} {la.target:>7.0%} {la.asa_s.mean:>7.1f} {lb.asa_s.mean:>7.1f}")
    print()
    print(f"{'desk':<18} {'agents A':>8} {'occupancy A':>12} {'agents B':>8} {'occupancy B':>12}")
    desks_b = {d.desk: d for d in result.b.desks}
    for desk in result.a.desks:
        other = desks_b.get(desk.desk)
        print(f"{desk.desk:<18} {desk.agents:>8} {desk.occupancy.mean:>12.1%} "
              f"{other.agents if other else 0:>8} {other.occupancy.mean if other else 0:>12.1%}")
    for desk in result.b.desks:
        if desk.desk not in {d.desk for d in result.a.desks}:
            print(f"{desk.desk:<18} {0:>8} {0:>12.1%} {desk.agents:>8} {desk.occupancy.mean:>12.1%}")

