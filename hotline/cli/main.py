"""`hotline`: tier tables, the agent roster, IVR flows, SMS, Asterisk's configuration, the
operator policy, and the service itself."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from types import ModuleType

from hotline.cli import (
    agents,
    asterisk,
    calls,
    db,
    flows,
    policy,
    report,
    serve,
    sms,
    status,
    tiers,
    users,
    whatif,
    workorders,
)
from hotline.cli.common import EXIT_USAGE, CliError, common_options, settings_from
from hotline_core.logs import configure_logging
from hotline_core.settings import Settings
from hotline_core.yamlpos import ConfigFileError


def command_groups() -> dict[str, ModuleType]:
    """Each group registers its own subcommands and runs them: `register(...)`, `run(args, settings)`."""
    return {"tiers": tiers, "serve": serve, "agents": agents, "sms": sms, "flows": flows, "asterisk": asterisk,
            "policy": policy, "db": db, "report": report, "calls": calls, "status": status, "users": users,
            "workorders": workorders, "whatif": whatif}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hotline", description=__doc__, parents=[common_options(False)])
    common = common_options(True)
    commands = parser.add_subparsers(dest="command", required=True)
    for group in command_groups().values():
        group.register(commands, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = settings_from(args)
        run: Callable[[argparse.Namespace, Settings], int] = command_groups()[args.command].run
        if args.command != "serve":  # the service configures its own logging (to stdout)
            configure_logging(settings.log_level, settings.log_format)
        return run(args, settings)
    except ConfigFileError as exc:
        print(f"hotline: configuration error\n{exc}", file=sys.stderr)
        return EXIT_USAGE
    except CliError as exc:
        print(f"hotline: {exc}", file=sys.stderr)
        return exc.code
    except BrokenPipeError:
        # The reader went away (`hotline agents list | head`): nothing more to say to it.
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("hotline: interrupted; a replace import in progress leaves the old table serving", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
