"""Classic AGI: `AGI(hotline-agi[,linkedid])`, one process per call, for installations without
FastAGI. Built on pyst2 for the AGI conversation; the identity comes from the same `CallEntry`
as the FastAGI route, so the variables are the same.

A process per call costs a Python start (~0.3 s of CPU); prefer FastAGI for volume.
"""

from __future__ import annotations

import asyncio
import io
import os
import sys
import time

import structlog
from asterisk.agi import AGI, AGIException

from agi.entry import CallEntry, Entered, log_entry
from agi.protocol import quote
from agi.variables import one_by_one, set_commands
from hotline.app import call_entry, open_services
from hotline.logs import configure_logging
from hotline.settings import load_settings
from hotline.yamlpos import ConfigFileError

log = structlog.get_logger("agi.classic")


def main() -> int:
    started = time.perf_counter()
    try:
        settings = load_settings(os.environ)
    except ConfigFileError as exc:
        print(f"hotline-agi: configuration error: {exc}", file=sys.stderr)
        return 1
    # Asterisk copies an AGI script's stderr into its own log: JSON lines, numbers masked.
    configure_logging(settings.log_level, "json", sys.stderr)
    # pyst2 reads stdin as text and echoes the environment (caller numbers) to its stderr:
    # decode leniently (caller names need not be UTF-8) and keep that echo out of Asterisk's log.
    stdin = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="replace")
    stdout = io.TextIOWrapper(sys.stdout.buffer, encoding="utf-8", write_through=True)
    agi = AGI(stdin=stdin, stdout=stdout, stderr=io.StringIO())
    env: dict[str, str] = dict(agi.env)
    linkedid = sys.argv[1] if len(sys.argv) > 1 else None

    async def enter() -> Entered:
        async with open_services(settings) as services:
            entry: CallEntry = call_entry(services)
            entered = await entry.enter(env, "classic", linkedid)
            await entered.saved()
            log_entry(env, entered.identity, started, route="classic")
            return entered

    entered = asyncio.run(enter())
    commands = set_commands(entered.variables)
    try:
        replies = [_send(agi, command) for command in commands]
        if len(replies) == 1 and replies[0] == "-2":  # no MSet application: one command each
            for command in one_by_one(entered.variables):
                _send(agi, command)
    except AGIException as exc:
        log.warning("classic agi: asterisk refused or hung up", error=str(exc))
    return 0


def _send(agi: AGI, command: tuple[str, ...]) -> str:
    verb, *arguments = command
    reply = agi.execute(verb, *(quote(a) for a in arguments))
    result: str = reply.get("result", ("", ""))[0]
    return result


if __name__ == "__main__":
    sys.exit(main())
