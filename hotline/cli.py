"""`hotline` command line: tier tables, policy checks and (later) the service itself."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import uvloop
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from hotline import agent_commands, astconf, flow_commands
from hotline.app import Services, flow_registry, open_services, serve
from hotline.logs import configure_logging
from hotline.numbers import NumberPlan, mask_number, normalize_number
from hotline.policy import Policy, load_policy
from hotline.settings import Settings, load_settings
from hotline.sms.worker import status_counts
from hotline.workers import run_workers
from hotline.yamlpos import ConfigFileError
from tier_lookup.importer import ImportOptions, Mode, import_table
from tier_lookup.store import TableBusy
from tier_lookup.tables import TABLES, RowContext

EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3


class CliError(Exception):
    def __init__(self, message: str, code: int = EXIT_USAGE):
        super().__init__(message)
        self.code = code


def _common_options(suppress: bool) -> argparse.ArgumentParser:
    """Options accepted before or after the subcommand (`hotline --redis-url U tiers ...` or
    `hotline tiers lookup N --redis-url U`)."""
    common = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS if suppress else None)
    common.add_argument("--config", type=Path, help="settings file (YAML); also HOTLINE_CONFIG")
    common.add_argument("--redis-url", help="Redis URL; also HOTLINE_REDIS_URL")
    common.add_argument("--policy-file", type=Path, help="operator policy (YAML); also HOTLINE_POLICY_FILE")
    common.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    common.add_argument("--log-format", choices=["auto", "json", "console"])
    return common


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hotline", description=__doc__, parents=[_common_options(False)])
    common = _common_options(True)
    commands = parser.add_subparsers(dest="command", required=True)

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

    serve = commands.add_parser("serve", help="run the FastAGI call-entry server (foreground)", parents=[common])
    serve.add_argument("--agi-host", help="listen address (default 127.0.0.1); also HOTLINE_AGI_HOST")
    serve.add_argument("--agi-port", type=int, help="listen port (default 4573); also HOTLINE_AGI_PORT")
    serve.add_argument("--workers", type=int,
                       help="worker processes sharing the port (default 1); also HOTLINE_WORKERS")

    agents = commands.add_parser("agents", help="agent roster and virtual desks").add_subparsers(
        dest="action", required=True)
    a_imp = agents.add_parser("import", help="replace the roster from CSV", parents=[common])
    a_imp.add_argument("file", type=Path)
    agents.add_parser("list", help="the roster", parents=[common])
    a_set = agents.add_parser("set", help="change an agent, e.g. agents set agent1 satisfaction=97%",
                              parents=[common])
    a_set.add_argument("agent_id")
    a_set.add_argument("changes", nargs="+", metavar="FIELD=VALUE")
    a_rm = agents.add_parser("remove", help="take an agent off the roster", parents=[common])
    a_rm.add_argument("agent_id")
    a_sec = agents.add_parser("secret", help="set the secret an agent signs in to the agent screen with",
                              parents=[common])
    a_sec.add_argument("agent_id")
    a_sec.add_argument("--secret", help="default: read from standard input")
    a_desks = agents.add_parser("desks", help="who sits at which virtual desk, and why", parents=[common])
    a_desks.add_argument("--at", help="date-time to judge tenure and seasons at (default now)")
    a_desks.add_argument("--queues", action="store_true", help="also show each level queue's members")

    sms = commands.add_parser("sms", help="SMS to callers").add_subparsers(dest="action", required=True)
    sms.add_parser("status", help="pending, sent, delivered, failed and dead-letter counts", parents=[common])
    sms.add_parser("dead", help="list the dead letters (jobs that kept failing)", parents=[common])
    opt = sms.add_parser("optout", help="numbers that get no post-call SMS", parents=[common])
    opt.add_argument("change", choices=["add", "remove", "list"])
    opt.add_argument("number", nargs="?")

    flows = commands.add_parser("flows", help="IVR flows").add_subparsers(dest="action", required=True)
    val = flows.add_parser("validate", help="check flow files: schema, graph, prompts, queues", parents=[common])
    val.add_argument("path", type=Path, nargs="?", help="a flow file or a directory (default: the configured flows)")
    val.add_argument("--sounds", type=Path, action="append", default=[],
                     help="a sound directory (repeatable; default: the Asterisk root's prompts)")
    sim = flows.add_parser("simulate", help="walk a flow as a caller would, without Asterisk", parents=[common])
    sim.add_argument("--caller", required=True)
    sim.add_argument("--dtmf", default="", help="answers to the menus in order, e.g. 1,2,# (empty item = silence)")
    sim.add_argument("--at", help="call time, ISO-8601 (default now)")
    sim.add_argument("--flow", help="flow to start in (default: the configured IVR flow)")
    sim.add_argument("--path", type=Path, help="flow file or directory (default: the configured flows)")
    gra = flows.add_parser("graph", help="draw a flow", parents=[common])
    gra.add_argument("flow", nargs="?", help="flow name (default: the configured IVR flow)")
    gra.add_argument("--format", choices=["mermaid", "dot", "svg"], default="mermaid")
    gra.add_argument("--path", type=Path, help="flow file or directory (default: the configured flows)")
    flows.add_parser("reload", help="ask every running `hotline serve` to reload its flows", parents=[common])
    flows.add_parser("schema", help="print the flow files' JSON Schema (for editors)", parents=[common])

    ast = commands.add_parser("asterisk", help="Asterisk configuration").add_subparsers(dest="action", required=True)
    rend = ast.add_parser("render", help="render asterisk_conf/ for a deployment into a directory")
    rend.add_argument("--target", type=Path, required=True, help="directory to write the .conf files into")
    rend.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                      help="deployment value, e.g. SIP_PORT=5060 AGI_HOST=127.0.0.1 (repeatable)")
    rend.add_argument("--agent", action="append", default=[], metavar="NAME:SECRET:CONTACT",
                      help="an agent endpoint and queue member (repeatable)")

    pol = commands.add_parser("policy", help="operator policy").add_subparsers(dest="action", required=True)
    check = pol.add_parser("check", help="validate a policy file", parents=[common])
    check.add_argument("file", type=Path, nargs="?", help="default: the configured policy file")
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    cli = {"redis_url": args.redis_url, "policy_file": args.policy_file, "log_level": args.log_level,
           "log_format": args.log_format, "agi_host": getattr(args, "agi_host", None),
           "agi_port": getattr(args, "agi_port", None), "workers": getattr(args, "workers", None)}
    return load_settings(os.environ, cli, args.config)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = _settings(args)
        if args.command == "serve":
            # The service logs to stdout (collected by its supervisor); commands keep stdout for results.
            configure_logging(settings.log_level, settings.log_format, sys.stdout)
            # Refuse to start on a bad policy or broken flows, before binding anything.
            load_policy(settings.policy_file)
            flow_registry(settings)

            def work() -> None:
                with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                    runner.run(serve(settings))

            if settings.workers > 1:
                return run_workers(settings.workers, work)
            work()
            return 0
        configure_logging(settings.log_level, settings.log_format)
        if args.command == "asterisk":
            return _render_asterisk(args)
        if args.command == "flows":
            return flow_commands.run(args, settings)
        if args.command == "policy":
            return _policy_check(args.file or settings.policy_file)
        policy = load_policy(settings.policy_file)
        if args.command == "agents":
            return asyncio.run(_run_agents(args, settings, policy))
        if args.command == "sms":
            return asyncio.run(_run_sms(args, settings, policy))
        return asyncio.run(_run_tiers(args, settings, policy))
    except ConfigFileError as exc:
        print(f"hotline: configuration error\n{exc}", file=sys.stderr)
        return EXIT_USAGE
    except CliError as exc:
        print(f"hotline: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        print("hotline: interrupted; a replace import in progress leaves the old table serving", file=sys.stderr)
        return 130


def _render_asterisk(args: argparse.Namespace) -> int:
    overrides: dict[str, str] = {}
    if os.environ.get("HOTLINE_AMI_SECRET"):
        overrides["AMI_SECRET"] = os.environ["HOTLINE_AMI_SECRET"]
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            raise CliError(f"--set {item!r}: expected KEY=VALUE")
        overrides[key] = value
    try:
        policy = load_policy(args.policy_file or _settings(args).policy_file)
        deployment = astconf.deployment_from(overrides, tuple(astconf.parse_endpoint(a) for a in args.agent),
                                             astconf.level_queues(policy))
        rendered = astconf.render(astconf.load_templates(), deployment)
    except astconf.RenderError as exc:
        raise CliError(str(exc)) from None
    astconf.write(rendered, args.target)
    print(f"{len(rendered)} files written to {args.target}")
    return 0


def _policy_check(path: Path) -> int:
    policy = load_policy(path)
    print(f"{path}: OK ({len(policy.levels)} levels, {len(policy.access_rules)} access rules, "
          f"{len(policy.desks)} desks)")
    return 0


async def _run_tiers(args: argparse.Namespace, settings: Settings, policy: Policy) -> int:
    async with open_services(settings, policy) as services:
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
        except (RedisConnectionError, OSError) as exc:
            raise CliError(f"cannot reach Redis at {settings.redis_url}: {exc}", EXIT_UNAVAILABLE) from None
        except RedisError as exc:
            raise CliError(f"Redis error: {exc}", EXIT_UNAVAILABLE) from None


async def _run_sms(args: argparse.Namespace, settings: Settings, policy: Policy) -> int:
    async with open_services(settings, policy) as services:
        try:
            return await sms_commands(args, services)
        except (RedisConnectionError, OSError) as exc:
            raise CliError(f"cannot reach Redis at {settings.redis_url}: {exc}", EXIT_UNAVAILABLE) from None


async def sms_commands(args: argparse.Namespace, services: Services) -> int:
    prefix = services.settings.redis_prefix
    redis = services.redis
    if args.action == "status":
        counts = await status_counts(redis, prefix)
        print("  ".join(f"{name} {value}" for name, value in counts.items()))
        return 0
    if args.action == "dead":
        entries: Any = await redis.xrange(f"{prefix}:sms:dead")
        for entry_id, fields in entries:
            print(f"{entry_id}  job {fields.get('job')}  to {mask_number(str(fields.get('number', '')))}  "
                  f"after {fields.get('attempts')} attempt(s): {fields.get('error')}")
        return 0
    key = f"{prefix}:sms:optout"
    if args.change == "list":
        members: Any = await redis.smembers(key)
        for member in sorted(members):
            print(member)
        return 0
    plan = NumberPlan(services.settings.country_code, services.settings.region)
    number = normalize_number(args.number or "", plan)
    if number is None:
        raise CliError(f"{args.number!r} is not a subscriber number")
    if args.change == "add":
        await redis.sadd(key, number)
    else:
        await redis.srem(key, number)
    print(f"{number}: {'opted out of' if args.change == 'add' else 'back on'} post-call SMS")
    return 0


async def _run_agents(args: argparse.Namespace, settings: Settings, policy: Policy) -> int:
    async with open_services(settings, policy) as services:
        try:
            return await agent_commands.run(args, services)
        except (RedisConnectionError, OSError) as exc:
            raise CliError(f"cannot reach Redis at {settings.redis_url}: {exc}", EXIT_UNAVAILABLE) from None


async def _import(args: argparse.Namespace, services: Services) -> int:
    policy = services.policy
    brands = {code: code for code in policy.brands if code != "unknown"}
    brands.update({spec.label.lower(): code for code, spec in policy.brands.items() if code != "unknown"})
    ctx = RowContext(
        zone=policy.zone,
        brands=brands,
        plan=NumberPlan(services.settings.country_code, services.settings.region),
    )
    options = ImportOptions(Mode(args.mode), args.skip_bad, args.allow_shrink, args.encoding)
    try:
        data = args.file.read_bytes()
    except OSError as exc:
        raise CliError(f"cannot read {args.file}: {exc.strerror}") from None
    report = await import_table(services.store, args.table, data, str(args.file), ctx, options)
    for error in report.errors:
        print(error.located(str(args.file)), file=sys.stderr)
    if report.rejected > len(report.errors):
        print(f"{args.file}: ... and {report.rejected - len(report.errors)} more rejected rows", file=sys.stderr)
    print(report.summary())
    return 0 if report.ok else EXIT_REFUSED


def _parse_at(text: str | None, policy: Policy) -> datetime | None:
    if text is None:
        return None
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise CliError(f"--at {text!r} is not an ISO-8601 date-time") from None
    return at if at.tzinfo else at.replace(tzinfo=policy.zone)


async def _lookup(args: argparse.Namespace, services: Services) -> int:
    identity = await services.lookup.identify(args.number, _parse_at(args.at, services.policy))
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
    print(f"{'table':<10} {'rows':>10} {'memory':>12} {'bytes/row':>9} {'buckets':>8}  imported (UTC)        source")
    for s in stats:
        print(f"{s.table:<10} {s.rows:>10} {s.memory_bytes:>12} {s.bytes_per_row:>9.1f} {s.buckets:>8}  "
              f"{s.imported_at:<20}  {s.source}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
