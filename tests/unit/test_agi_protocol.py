"""The AGI parser fed recorded byte transcripts, split at every position: no sockets."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from agi.protocol import (
    NEED_DATA,
    AgiParser,
    Closed,
    CommandFailed,
    Environment,
    Hangup,
    LocalProtocolError,
    RemoteProtocolError,
    Response,
    Trying,
    format_command,
    quote,
)
from hotline_core.policy import Policy

ENV = (
    b"agi_network: yes\n"
    b"agi_network_script: entry\n"
    b"agi_request: agi://127.0.0.1:4573/entry\n"
    b"agi_channel: PJSIP/caller-00000001\n"
    b"agi_uniqueid: 1732262400.17\n"
    b"agi_callerid: 13800000001\n"
    b"agi_calleridname: \xe7\x8e\x8b\xff\n"
    b"agi_arg_1: 1732262400.17\n"
    b"\n"
)
REPLIES = (
    b"100 result=0 Trying...\n"
    b"200 result=1\n"
    b"200 result=1 (timeout) endpos=1234\n"
    b"HANGUP\n"
    b"520-Invalid command syntax.  Proper usage follows:\n"
    b" Usage: SET VARIABLE <variablename> <value>\n"
    b"520 End of proper usage.\n"
    b"510 Invalid or unknown command\n"
    b"511 Command Not Permitted on a dead channel or intercept routine\n"
)
EXPECTED = [
    Trying(),
    Response("1"),
    Response("1", "timeout", 1234),
    Hangup(),
    CommandFailed(520, "invalid command syntax", (" Usage: SET VARIABLE <variablename> <value>",)),
    CommandFailed(510, "Invalid or unknown command"),
    CommandFailed(511, "Command Not Permitted on a dead channel or intercept routine"),
]


def run_transcript(chunks: list[bytes], commands_after_env: int) -> list[object]:
    """Feed chunks as a socket would; send `commands_after_env` commands as soon as the
    environment block is complete (as the server does)."""
    parser = AgiParser()
    events: list[object] = []

    def pump() -> None:
        while (event := parser.next_event()) is not NEED_DATA:
            events.append(event)
            if isinstance(event, Environment):
                for _ in range(commands_after_env):
                    parser.command("NOOP")
            if isinstance(event, Closed):
                return

    for chunk in chunks:
        parser.receive_data(chunk)
        pump()
    parser.receive_data(b"")
    pump()
    return events


def test_environment_then_every_reply_kind() -> None:
    events = run_transcript([ENV + REPLIES], commands_after_env=5)
    env = events[0]
    assert isinstance(env, Environment)
    assert env.script == "entry"
    assert env.get("agi_callerid") == "13800000001"
    assert env.get("agi_calleridname") == "王\ufffd"  # non-UTF-8 byte kept as a replacement char
    assert env.arguments == ("1732262400.17",)
    assert events[1:-1] == EXPECTED
    assert events[-1] == Closed("idle")


@pytest.mark.parametrize("split", range(1, len(ENV + REPLIES)))
def test_same_events_whatever_the_split(split: int) -> None:
    data = ENV + REPLIES
    whole = run_transcript([data], commands_after_env=5)
    assert run_transcript([data[:split], data[split:]], commands_after_env=5) == whole


def test_byte_by_byte() -> None:
    data = ENV + REPLIES
    assert run_transcript([data[i : i + 1] for i in range(len(data))], 5) == run_transcript([data], 5)


@pytest.mark.parametrize("cut", [0, 10, len(ENV) - 1])
def test_close_in_the_middle_of_the_environment(cut: int) -> None:
    assert run_transcript([ENV[:cut]], 0) == [Closed("environment")]


def test_close_while_a_reply_is_owed() -> None:
    events = run_transcript([ENV], commands_after_env=1)
    assert events[-1] == Closed("reply")


def test_close_in_the_middle_of_a_usage_reply() -> None:
    events = run_transcript([ENV, b"520-Invalid command syntax.\n usage line\n"], commands_after_env=1)
    assert events[-1] == Closed("usage reply")


def test_environment_lines_without_separator_are_kept_aside() -> None:
    parser = AgiParser()
    parser.receive_data(b"agi_network_script: entry\ngarbage line\nagi_x:novalue\n\n")
    env = parser.next_event()
    assert isinstance(env, Environment)
    assert env.variables == {"agi_network_script": "entry"}
    assert env.malformed == ("garbage line", "agi_x:novalue")


def one_line_at_a_time(block: bytes) -> Environment:
    parser = AgiParser()
    events = []
    for line in block.splitlines(keepends=True):
        parser.receive_data(line)
        events += [e for e in iter(parser.next_event, NEED_DATA)]
    [env] = events
    assert isinstance(env, Environment)
    return env


@pytest.mark.parametrize("block", [ENV, b"agi_network_script: entry\ngarbage\nagi_x:novalue\n\n",
                                   b"agi_a: 1\nagi_a: 2\n\n", b"agi a: 1\nagi_b: 2\n\n",
                                   b"agi_a:: 1\nagi_b: 2: 3\nagi_c: \n\n", b": 1\nagi_b: 2\n\n",
                                   "agi_calleridname: \u738b\u5c0f\u660e\nagi_\u540d: x\n\n".encode()])
def test_a_whole_environment_block_parses_as_it_does_line_by_line(block: bytes) -> None:
    parser = AgiParser()
    parser.receive_data(block + b"200 result=1\n")
    whole = parser.next_event()
    assert whole == one_line_at_a_time(block)
    parser.command("NOOP")
    assert parser.next_event() == Response("1")  # what followed the block is still there


def test_a_long_line_inside_a_whole_block_is_refused() -> None:
    parser = AgiParser()
    parser.receive_data(b"agi_callerid: " + b"x" * 17000 + b"\n\n")
    with pytest.raises(RemoteProtocolError, match="line longer than 16384 bytes"):
        parser.next_event()


def test_too_large_a_whole_block_is_refused() -> None:
    parser = AgiParser()
    parser.receive_data(b"".join(f"agi_v{i}: {'x' * 200}\n".encode() for i in range(200)) + b"\n")
    with pytest.raises(RemoteProtocolError, match="environment block longer than 32768 bytes"):
        parser.next_event()


def test_crlf_line_ends_are_accepted() -> None:
    parser = AgiParser()
    parser.receive_data(b"agi_network_script: entry\r\n\r\n")
    env = parser.next_event()
    assert isinstance(env, Environment)
    assert env.script == "entry"


def test_a_one_megabyte_line_is_refused_without_buffering_it_all() -> None:
    parser = AgiParser()
    parser.receive_data(b"agi_callerid: " + b"x" * 16000)
    assert parser.next_event() is NEED_DATA  # long, but not yet over the limit
    parser.receive_data(b"x" * 65536)  # the server reads at most 64 KiB at a time
    with pytest.raises(RemoteProtocolError, match="line longer than 16384 bytes"):
        parser.next_event()


def test_too_many_environment_lines() -> None:
    parser = AgiParser()
    parser.receive_data(b"".join(f"agi_v{i}: x\n".encode() for i in range(300)))
    with pytest.raises(RemoteProtocolError, match="environment block longer than"):
        parser.next_event()


def test_reply_without_a_command_is_a_protocol_error() -> None:
    parser = AgiParser()
    parser.receive_data(ENV + b"200 result=1\n")
    assert isinstance(parser.next_event(), Environment)
    with pytest.raises(RemoteProtocolError, match="no command outstanding"):
        parser.next_event()


@pytest.mark.parametrize("line", [b"200 result\n", b"HTTP/1.1 200 OK\n", b"999 what\n"])
def test_garbage_replies(line: bytes) -> None:
    parser = AgiParser()
    parser.receive_data(ENV + line)
    parser.next_event()
    parser.command("NOOP")
    with pytest.raises(RemoteProtocolError):
        parser.next_event()


def test_commands_only_after_the_environment() -> None:
    with pytest.raises(LocalProtocolError):
        AgiParser().command("NOOP")


def test_quoting_survives_asterisks_argument_splitter() -> None:
    assert quote('say "hi", \\ 你好') == '"say \\"hi\\", \\\\ 你好"'
    assert quote("a\nb") == '"a b"'
    assert format_command("SET VARIABLE", "X", "a b") == b'SET VARIABLE "X" "a b"\n'
    with pytest.raises(LocalProtocolError):
        format_command("set variable; rm", "x")


def split_like_asterisk(line: str) -> list[str]:
    """res_agi.c's parse_args, re-stated: quotes group, a backslash takes the next char literally."""
    args: list[str] = []
    current: list[str] | None = None
    quoted = escaped = False
    for ch in line:
        if ch == '"' and not escaped:
            quoted = not quoted
            if current is None:
                current = []
            continue
        if ch in " \t" and not quoted and not escaped:
            if current is not None:
                args.append("".join(current))
            current = None
            continue
        if ch == "\\" and not escaped:
            escaped = True
            if current is None:
                current = []
            continue
        escaped = False
        if current is None:
            current = []
        current.append(ch)
    if current is not None:
        args.append("".join(current))
    return args


@pytest.mark.parametrize("value", ["plain", "with space", 'q"uote', "back\\slash", "a,b,c", "尊敬的王站长,你好", "", "  "])
def test_values_arrive_intact_through_the_splitter(value: str) -> None:
    line = format_command("SET VARIABLE", "HOTLINE_X", value).decode().rstrip("\n")
    assert split_like_asterisk(line) == ["SET", "VARIABLE", "HOTLINE_X", value]


def test_contract_lines_are_kept_per_shape_of_identity_and_bounded(policy: Policy) -> None:
    from agi.variables import ContractLines, identity_variables, set_commands
    from tier_lookup.identity import IdentityResolver

    resolver = IdentityResolver(policy)
    at = datetime(2026, 11, 10, 2, 0, tzinfo=UTC)
    lines = ContractLines(limit=2)
    vip = resolver.resolve("8613800000001", {"highend": {}, "brand": {"brand": "gotone"}}, at)
    first = lines.for_identity(vip)
    assert list(first.variables) == identity_variables(vip)
    assert list(first.lines) == [format_command(*c) for c in set_commands(identity_variables(vip))]
    # Another caller of the same shape: the kept contract.
    assert lines.for_identity(resolver.resolve("8613800000002", {"highend": {}, "brand": {"brand": "gotone"}}, at)) \
        is first
    # Any difference in shape gives its own values: a flag, a degraded lookup, another service.
    shapes = [resolver.resolve("8613800000001", {"highend": {}, "brand": {"brand": "gotone"}, "redlist": {}}, at),
              resolver.resolve("8613800000001", {}, at, degraded=True),
              resolver.resolve("8613800000001", {"campus": {}}, at)]
    for other in shapes:  # three shapes past a limit of two: the cache starts over, answers stay right
        contract = lines.for_identity(other)
        assert list(contract.variables) == identity_variables(other)
        assert contract.variables != first.variables
    assert lines.for_identity(vip) == first


def test_values_too_long_for_one_mset_are_set_one_by_one() -> None:
    from agi.variables import set_commands

    huge = [(f"V{i}", "x" * 300) for i in range(11)]
    assert [command[0] for command in set_commands(huge)] == ["SET VARIABLE"] * 11


def test_only_a_refused_lone_mset_is_sent_again_one_variable_at_a_time() -> None:
    from agi.variables import instead_of_refused, one_by_one, set_commands

    pairs = [("HOTLINE_TIER", "rural"), ("QUEUE_PRIO", "10")]
    mset = set_commands(pairs)
    assert instead_of_refused(mset, pairs) == [("SET VARIABLE", "HOTLINE_TIER", "rural"),
                                               ("SET VARIABLE", "QUEUE_PRIO", "10")]
    assert instead_of_refused(one_by_one(pairs), pairs) == []  # those refused are counted, not resent
    assert instead_of_refused([("SET VARIABLE", "HOTLINE_TIER", "rural")], pairs[:1]) == []
