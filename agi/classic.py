"""Classic AGI over pyst2: one process per call, talking to Asterisk on stdin and stdout.

The conversation only; the `hotline-agi` command (`hotline.cli.classic_agi`) fixes the identity
with the same `CallEntry` as the FastAGI route, so the variables are the same. pyst2 is
synchronous and never runs on an event loop.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Sequence

import structlog
from asterisk.agi import AGI, AGIException

from agi.protocol import quote
from agi.variables import NO_APPLICATION, instead_of_refused, set_commands

log = structlog.get_logger("agi.classic")


def open_agi() -> AGI:
    """pyst2's AGI on this process's stdin and stdout; it reads the environment block at once."""
    # pyst2 reads stdin as text and echoes the environment (caller numbers) to its stderr:
    # decode leniently (caller names need not be UTF-8) and keep that echo out of Asterisk's log.
    stdin = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="replace")
    stdout = io.TextIOWrapper(sys.stdout.buffer, encoding="utf-8", write_through=True)
    return AGI(stdin=stdin, stdout=stdout, stderr=io.StringIO())


def set_on_channel(agi: AGI, variables: Sequence[tuple[str, str]]) -> None:
    """One MSet, or one SET VARIABLE each where Asterisk has no MSet; a hang-up is only logged."""
    try:
        commands = set_commands(variables)
        replies = [_send(agi, command) for command in commands]
        if replies[0] == NO_APPLICATION:
            for command in instead_of_refused(commands, variables):
                _send(agi, command)
    except AGIException as exc:
        log.warning("classic agi: asterisk refused or hung up", error=str(exc))


def _send(agi: AGI, command: tuple[str, ...]) -> str:
    verb, *arguments = command
    reply = agi.execute(verb, *(quote(a) for a in arguments))
    result: str = reply.get("result", ("", ""))[0]
    return result
