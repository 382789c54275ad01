"""Asterisk's side of a FastAGI session, for tests and the load generator.

It sends an environment block, then answers every command line the server sends, the way
Asterisk does (`200 result=1` by default, or whatever `answer` returns), until the server
closes. The transcript of commands is kept for assertions.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

Answer = Callable[[int, bytes], bytes]


def always_ok(_index: int, _command: bytes) -> bytes:
    return b"200 result=1\n"


def environment(route: str, caller: str, uniqueid: str, extra: Mapping[str, str] | None = None) -> bytes:
    lines = {
        "agi_network": "yes",
        "agi_network_script": route,
        "agi_request": f"agi://127.0.0.1/{route}",
        "agi_channel": f"PJSIP/caller-{uniqueid}",
        "agi_language": "en",
        "agi_type": "PJSIP",
        "agi_uniqueid": uniqueid,
        "agi_version": "22.10.1",
        "agi_callerid": caller,
        "agi_calleridname": "caller",
        "agi_context": "hotline",
        "agi_extension": "10086",
        "agi_priority": "3",
        "agi_enhanced": "0.0",
        **(extra or {}),
    }
    # surrogateescape lets a test smuggle raw non-UTF-8 bytes into a value, as SIP headers can.
    return b"".join(f"{k}: {v}\n".encode("utf-8", "surrogateescape") for k, v in lines.items()) + b"\n"


@dataclass
class PeerResult:
    commands: list[bytes] = field(default_factory=list)
    closed_by_server: bool = False

    def variables(self) -> dict[str, str]:
        """SET VARIABLE and EXEC MSet commands decoded back into name -> value, undoing the AGI
        quoting and the application-argument escaping the way Asterisk does."""
        out: dict[str, str] = {}
        for line in self.commands:
            args = _split(line.decode(), " ")
            if args[:2] == ["SET", "VARIABLE"]:
                out[args[2]] = args[3]
            elif args[0] == "EXEC" and args[1] == "MSet":
                for pair in _split(args[2], ","):
                    name, _, value = pair.partition("=")
                    out[name] = value
        return out


def _split(text: str, separator: str) -> list[str]:
    """Split on `separator` outside quotes; a backslash takes the next character literally."""
    args: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for ch in text:
        if escaped:
            current.append(ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif ch == separator and not quoted:
            args.append("".join(current))
            current = []
        else:
            current.append(ch)
    args.append("".join(current))
    return args


async def play(
    host: str,
    port: int,
    env: bytes,
    answer: Answer = always_ok,
    limit_s: float = 5.0,
) -> PeerResult:
    reader, writer = await asyncio.open_connection(host, port)
    result = PeerResult()
    try:
        writer.write(env)
        await writer.drain()
        async with asyncio.timeout(limit_s):
            while True:
                line = await reader.readline()
                if not line:
                    result.closed_by_server = True
                    break
                command = line.rstrip(b"\n")
                result.commands.append(command)
                reply = answer(len(result.commands) - 1, command)
                if reply:
                    writer.write(reply)
                    await writer.drain()
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await writer.wait_closed()
    return result
