"""The AGI wire protocol as a pure state machine: bytes in, events out, no I/O.

Modelled on h11: `receive_data(bytes)` feeds what the socket gave (b"" at end of stream),
`next_event()` returns one event or NEED_DATA. `command(...)` returns the bytes to write and
records that a reply is owed, so replies can be matched to commands.

What Asterisk sends (res_agi.c):
  the environment block  `agi_name: value\\n` lines, ended by an empty line;
  replies                `200 result=<r> [(data)] [endpos=<n>]`, `100 result=0 Trying...`,
                         `510 Invalid or unknown command`, `511 Command Not Permitted on a dead channel`,
                         `520-Invalid command syntax.  Proper usage follows:` ... `520 End of proper usage.`;
  at any time            `HANGUP` when the channel hangs up (FastAGI).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import Enum
from typing import Final

MAX_LINE: Final = 16 * 1024
MAX_ENV_LINES: Final = 256
MAX_USAGE_LINES: Final = 256


class AgiError(Exception):
    pass


class RemoteProtocolError(AgiError):
    """The peer sent something AGI does not allow; the connection cannot continue."""


class LocalProtocolError(AgiError):
    """We tried to do something the protocol does not allow (a bug on our side)."""


class _NeedData(Enum):
    NEED_DATA = "NEED_DATA"


NEED_DATA: Final = _NeedData.NEED_DATA


@dataclass(frozen=True, slots=True)
class Environment:
    variables: dict[str, str]
    malformed: tuple[str, ...] = ()  # lines without "name: value", kept for the log

    def get(self, name: str, default: str = "") -> str:
        return self.variables.get(name, default)

    @property
    def script(self) -> str:
        """The FastAGI route: `agi://host/entry` gives `entry`."""
        return self.get("agi_network_script").strip("/")

    @property
    def arguments(self) -> tuple[str, ...]:
        args = []
        index = 1
        while f"agi_arg_{index}" in self.variables:
            args.append(self.variables[f"agi_arg_{index}"])
            index += 1
        return tuple(args)


@dataclass(frozen=True, slots=True)
class Response:
    """A `200` reply: the command ran. `result` and `data` keep Asterisk's text."""

    result: str
    data: str | None = None
    endpos: int | None = None


@dataclass(frozen=True, slots=True)
class Trying:
    """`100 Trying`: the command is running; its real reply follows."""


@dataclass(frozen=True, slots=True)
class CommandFailed:
    """A 510 (unknown command), 511 (dead channel) or 520 (usage) reply."""

    code: int
    message: str
    usage: tuple[str, ...] = ()

    @property
    def dead_channel(self) -> bool:
        return self.code == 511


@dataclass(frozen=True, slots=True)
class Hangup:
    """Asterisk says the channel hung up; replies to commands already sent may still follow."""


@dataclass(frozen=True, slots=True)
class Closed:
    """The peer closed the connection. `during` says what we were waiting for."""

    during: str


Event = Environment | Response | Trying | CommandFailed | Hangup | Closed

_RESPONSE = re.compile(r"^200 result=(?P<result>\S*)(?: \((?P<data>.*)\))?(?: endpos=(?P<endpos>\d+))?\s*$")


_SUCCESS: Final = Response("1")  # immutable, so one serves every reply that says just this


class _State(Enum):
    ENVIRONMENT = "environment"
    COMMANDS = "commands"
    CLOSED = "closed"


@dataclass(slots=True)
class AgiParser:
    """One AGI session seen from the server (our) side."""

    max_line: int = MAX_LINE
    _buffer: bytearray = field(default_factory=bytearray)
    _eof: bool = False
    _state: _State = _State.ENVIRONMENT
    _env: dict[str, str] = field(default_factory=dict)
    _malformed: list[str] = field(default_factory=list)
    _env_lines: int = 0
    _env_bytes: int = 0
    # Asterisk sends ~2 KB of environment at once; a peer that sends far more is not Asterisk.
    max_environment: int = 32 * 1024
    _usage: list[str] | None = None
    pending: int = 0  # commands sent whose final reply has not arrived
    hung_up: bool = False

    # -- input ---------------------------------------------------------------------------
    def receive_data(self, data: bytes) -> None:
        if self._eof and data:
            raise LocalProtocolError("data received after end of stream")
        if not data:
            self._eof = True
            return
        self._buffer += data

    def next_event(self) -> Event | _NeedData:
        if self._state is _State.ENVIRONMENT and (block := self._environment_block()) is not None:
            return block
        while True:
            if self._state is _State.CLOSED:
                return NEED_DATA
            line = self._next_line()
            if line is None:
                if self._eof:
                    during = self._closing_phase()
                    self._state = _State.CLOSED
                    return Closed(during)
                return NEED_DATA
            event = self._environment_line(line) if self._state is _State.ENVIRONMENT else self._reply_line(line)
            if event is not None:
                return event

    @property
    def in_environment(self) -> bool:
        """Still reading the environment block (nothing of the call has begun)."""
        return self._state is _State.ENVIRONMENT

    def _closing_phase(self) -> str:
        if self._state is _State.ENVIRONMENT:
            return "environment"
        if self._usage is not None:
            return "usage reply"
        return "reply" if self.pending else "idle"

    def _next_line(self) -> str | None:
        end = self._buffer.find(b"\n")
        if end < 0:
            if len(self._buffer) > self.max_line:
                raise RemoteProtocolError(f"line longer than {self.max_line} bytes")
            return None
        if end > self.max_line:
            raise RemoteProtocolError(f"line longer than {self.max_line} bytes")
        raw = bytes(self._buffer[:end])
        del self._buffer[: end + 1]
        # Caller names come from SIP headers: not always UTF-8. Keep going, mark what was lost.
        return raw.rstrip(b"\r").decode("utf-8", errors="replace")

    def _environment_block(self) -> Environment | None:
        """The rest of the environment in one pass once its end is in the buffer (Asterisk
        writes the block at once): one decode and one split per line instead of a round of
        checks per line, which was a tenth of a call entry's CPU. A block the split does not
        take whole (a line without "name: value", a line or block over the limits) goes
        through the line-by-line checks, which name what was wrong."""
        end = self._buffer.find(b"\n\n")
        if end < 0 or self._buffer.startswith(b"\n") or self._buffer.find(b"\r", 0, end) >= 0:
            # Not all here yet, the block ends at once, or CR line ends: the line-by-line path.
            return None
        text = self._buffer[:end].decode("utf-8", errors="replace")
        del self._buffer[: end + 2]
        lines = text.split("\n")
        pairs = None
        if len(text) <= self.max_line and len(lines) <= MAX_ENV_LINES and len(text) < self.max_environment:
            try:
                pairs = dict([line.split(": ", 1) for line in lines])
            except ValueError:  # a line without ": "
                pairs = None
        # A name must be there and hold no space (split does not check what the line-by-line
        # path does).
        if pairs is not None and "" not in pairs and " " not in "".join(pairs):
            self._env_lines = len(lines)
            self._env_bytes = len(text) + 1
            self._env.update(pairs)
        else:
            for line in text.split("\n"):
                if len(line) > self.max_line:
                    raise RemoteProtocolError(f"line longer than {self.max_line} bytes")
                self._environment_line(line)
        return self._environment_line("")

    def _environment_line(self, line: str) -> Environment | None:
        if line == "":
            self._state = _State.COMMANDS
            return Environment(self._env, tuple(self._malformed))
        self._env_lines += 1
        self._env_bytes += len(line) + 1
        if self._env_bytes > self.max_environment:
            raise RemoteProtocolError(f"environment block longer than {self.max_environment} bytes")
        if self._env_lines > MAX_ENV_LINES:
            raise RemoteProtocolError(f"environment block longer than {MAX_ENV_LINES} lines")
        name, sep, value = line.partition(": ")
        if not sep or not name or " " in name:
            self._malformed.append(line[:120])
            return None
        self._env[name] = value
        return None

    def _reply_line(self, line: str) -> Event | None:
        if line == "HANGUP":
            self.hung_up = True
            return Hangup()
        if self._usage is not None:
            if line.startswith("520 "):
                usage, self._usage = tuple(self._usage), None
                return self._final(CommandFailed(520, "invalid command syntax", usage))
            if len(self._usage) >= MAX_USAGE_LINES:
                raise RemoteProtocolError(f"520 usage reply longer than {MAX_USAGE_LINES} lines")
            self._usage.append(line)
            return None
        if self.pending == 0:
            raise RemoteProtocolError(f"reply with no command outstanding: {line[:80]!r}")
        if line == "200 result=1":  # what most commands get: no expression to run
            return self._final(_SUCCESS)
        if line.startswith("200 "):
            match = _RESPONSE.match(line)
            if match is None:
                raise RemoteProtocolError(f"malformed 200 reply: {line[:80]!r}")
            endpos = match.group("endpos")
            return self._final(Response(match.group("result"), match.group("data"), int(endpos) if endpos else None))
        if line.startswith("100 "):
            return Trying()
        if line.startswith("520-"):
            self._usage = []
            return None
        if line.startswith(("510 ", "511 ", "520 ")):
            return self._final(CommandFailed(int(line[:3]), line[4:]))
        raise RemoteProtocolError(f"unexpected reply line: {line[:80]!r}")

    def _final(self, event: Response | CommandFailed) -> Response | CommandFailed:
        self.pending -= 1
        return event

    # -- output --------------------------------------------------------------------------
    def command(self, *words: str) -> bytes:
        """Bytes for one AGI command; the first word(s) verbatim, the rest quoted as arguments."""
        return self.formatted(format_command(*words))

    def formatted(self, line: bytes) -> bytes:
        """Account for a command already formatted by `format_command` (kept and reused by a
        caller that sends the same command often); returns it to write."""
        if self._state is not _State.COMMANDS:
            raise LocalProtocolError(f"cannot send a command while in state {self._state.value}")
        self.pending += 1
        return line


def quote(argument: str) -> str:
    """Quote one AGI argument. Asterisk splits on spaces outside quotes and takes the character
    after a backslash literally, so quotes and backslashes are escaped; line ends would end the
    command, so they become spaces."""
    cleaned = argument.replace("\r", " ").replace("\n", " ")
    return '"' + cleaned.replace("\\", "\\\\").replace('"', '\\"') + '"'


_APP_ESCAPES = {
    **{c: "\\" + chr(c) for c in range(0x21, 0x7F) if not chr(c).isalnum()},
    ord("\r"): " ",
    ord("\n"): " ",
}


def app_escape(value: str) -> str:
    """Escape a value for a dialplan application's argument list (inside EXEC).

    Asterisk splits application arguments on commas, groups on quotes and parentheses and takes
    the character after a backslash literally; escaping every ASCII punctuation character makes
    any value (commas, quotes, `${...}`, Chinese text) arrive as written. Verified against
    Asterisk 22 with MSet (see tests/e2e and docs/benchmarks.md)."""
    return value.translate(_APP_ESCAPES)


_VERB = re.compile(r"[A-Z][A-Z ]*[A-Z]")


def format_command(verb: str, *arguments: str) -> bytes:
    if not _VERB.fullmatch(verb):
        raise LocalProtocolError(f"not an AGI verb: {verb!r}")
    parts = [verb, *(quote(a) for a in arguments)]
    return (" ".join(parts) + "\n").encode("utf-8")
