"""SIPp as the softphones: agents (UAS that answer) and callers (UAC scenarios with DTMF)."""

from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from harness.procs import Managed, StackError

PCAP_DIR = Path("/usr/share/sip-tester")


def require_sipp() -> str:
    found = shutil.which("sipp")
    if found is None:
        raise StackError("sipp not found: install Debian's sip-tester package (make deps)")
    return found


@dataclass
class SippAgent:
    """An agent's phone: answers every call and stays connected until the caller hangs up, or,
    with `talk_ms`, hangs up itself that long after answering (a fixed talk time)."""

    name: str
    sip_port: int
    media_port: int
    run_dir: Path
    talk_ms: int | None = None

    def __post_init__(self) -> None:
        # SIPp ignores SIGTERM; SIGINT ends it at once.
        self.process = Managed(f"agent {self.name}", self.run_dir / f"sipp-{self.name}.pid",
                               self.run_dir / f"sipp-{self.name}.log", signal.SIGINT)

    @property
    def contact(self) -> str:
        return f"sip:{self.name}@127.0.0.1:{self.sip_port}"

    def start(self) -> None:
        scenario = ["-sn", "uas"]
        if self.talk_ms is not None:
            path = self.run_dir / f"sipp-{self.name}-timed.xml"
            path.write_text(timed_agent_scenario(self.talk_ms))
            scenario = ["-sf", str(path)]
        self.process.start([
            # -ci: SIPp's control socket on loopback too (by default on every address).
            require_sipp(), *scenario, "-i", "127.0.0.1", "-ci", "127.0.0.1", "-p", str(self.sip_port),
            "-mi", "127.0.0.1", "-mp", str(self.media_port), "-nostdin",
            "-trace_err", "-error_file", str(self.run_dir / f"sipp-{self.name}-errors.log"),
        ])

    def stop(self) -> None:
        self.process.stop(5.0)

    def register(self, asterisk_sip_port: int, secret: str, limit_s: float = 20.0) -> None:
        """Register this phone with Asterisk (digest auth with its name and secret), as a
        production agent's phone does; run it before `start`, which then answers on the same port."""
        path = self.run_dir / f"sipp-{self.name}-register.xml"
        path.write_text(_REGISTER)
        done = subprocess.run([
            require_sipp(), "-sf", str(path), "-m", "1", "-i", "127.0.0.1", "-ci", "127.0.0.1",
            "-p", str(self.sip_port), "-s", self.name, "-au", self.name, "-ap", secret, "-nostdin",
            "-timeout", f"{int(limit_s)}s", "-timeout_error", "-trace_err",
            "-error_file", str(self.run_dir / f"sipp-{self.name}-register-errors.log"),
            f"127.0.0.1:{asterisk_sip_port}",
        ], cwd=self.run_dir, capture_output=True, text=True, timeout=limit_s + 10, check=False)
        if done.returncode != 0:
            raise StackError(f"agent {self.name} could not register: {(done.stdout + done.stderr)[-2000:]}")


# A phone's registration: challenged, then again with the digest of its name and secret
# (SIPp's [authentication] from -au/-ap); Contact is the port it will answer calls on.
_REGISTER_REQUEST = """  <send retrans="500"><![CDATA[
REGISTER sip:[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:[service]@[remote_ip]:[remote_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: {cseq} REGISTER
Contact: <sip:[service]@[local_ip]:[local_port]>
Expires: 3600
{auth}Max-Forwards: 70
Content-Length: 0

]]></send>
"""
_REGISTER = ("""<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="agent phone registers">
""" + _REGISTER_REQUEST.format(cseq=1, auth="") + """  <recv response="401" auth="true"/>
""" + _REGISTER_REQUEST.format(cseq=2, auth="[authentication]\n") + """  <recv response="200"/>
</scenario>
""")


# [cid] is the caller's number: a -key for single calls, [field0] of an -inf file for load runs.
_HEAD = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="hotline caller">
  <send retrans="500"><![CDATA[
INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: "[cid]" <sip:[cid]@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: <sip:[cid]@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

v=0
o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 0 101
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=sendrecv
]]></send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="183" optional="true"/>
  <recv response="200" rtd="true"/>
  <send><![CDATA[
ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: "[cid]" <sip:[cid]@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 1 ACK
Contact: <sip:[cid]@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Length: 0

]]></send>
"""

_INFO = """  <send retrans="500"><![CDATA[
INFO sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: "[cid]" <sip:[cid]@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: {cseq} INFO
Contact: <sip:[cid]@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Type: application/dtmf-relay
Content-Length: [len]

Signal={digit}
Duration=160
]]></send>
  <recv response="200"/>
"""

_RFC4733 = """  <nop><action><exec play_pcap_audio="{pcap}"/></action></nop>
  <pause milliseconds="400"/>
"""

# The caller hangs up (its BYE, answered), and answers Asterisk's BYE: written once, used below.
_SEND_BYE = """  <send retrans="500"><![CDATA[
BYE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: "[cid]" <sip:[cid]@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: {cseq} BYE
Contact: <sip:[cid]@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Length: 0

]]></send>
  <recv response="200"/>
"""
_OK_TO_BYE = """SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
"""

_TAIL = """  <pause milliseconds="{talk_ms}"/>
""" + _SEND_BYE + """</scenario>
"""


_HUNG_UP_BY_ASTERISK = """  <recv request="BYE"/>
  <send><![CDATA[
""" + _OK_TO_BYE + """</scenario>
"""


# A caller who stays until Asterisk hangs up (the agent ended the call) or, at `patience_ms`
# after its digits, gives up and hangs up itself (an abandon, if still waiting in the queue).
_WAIT_OR_GIVE_UP = """  <recv request="BYE" timeout="{patience_ms}" ontimeout="1"/>
  <send next="2"><![CDATA[
""" + _OK_TO_BYE + """  <label id="1"/>
""" + _SEND_BYE + """  <label id="2"/>
</scenario>
"""

# An agent's phone that answers and hangs up `talk_ms` later. The BYE goes to the INVITE's
# Contact (SIPp's [next_url] is empty here: the last message received, the ACK, has none),
# from the To it answered (with the tag it gave) to the caller's From.
_TIMED_AGENT = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="timed agent">
  <recv request="INVITE" crlf="true">
    <action>
      <ereg regexp=".*" search_in="hdr" header="From:" check_it="true" assign_to="their_from"/>
      <ereg regexp=".*" search_in="hdr" header="To:" check_it="true" assign_to="our_to"/>
      <ereg regexp="sip:[^>;]*" search_in="hdr" header="Contact:" check_it="true" assign_to="their_contact"/>
    </action>
  </recv>
  <send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:[local_ip]:[local_port];transport=[transport]>
Content-Type: application/sdp
Content-Length: [len]

v=0
o=agent 53655765 2353687637 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 0
a=rtpmap:0 PCMU/8000
]]></send>
  <recv request="ACK" crlf="true"/>
  <pause milliseconds="{talk_ms}"/>
  <send retrans="500"><![CDATA[
BYE [$their_contact] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: [$our_to];tag=[pid]SIPpTag01[call_number]
To: [$their_from]
Call-ID: [call_id]
CSeq: 2 BYE
Max-Forwards: 70
Content-Length: 0

]]></send>
  <recv response="200"/>
</scenario>
"""


def timed_agent_scenario(talk_ms: int) -> str:
    return _TIMED_AGENT.format(talk_ms=talk_ms)


def load_scenario() -> str:
    """A caller for load runs: number from an injection file, hung up by Asterisk."""
    return _HEAD.replace("[cid]", "[field0]") + _HUNG_UP_BY_ASTERISK


def caller_scenario(digits: str, dtmf: str, wait_ms: int, talk_ms: int, gap_ms: int = 0,
                    patience_ms: int | None = None, survey: str | None = None, survey_after_ms: int = 0) -> str:
    """A caller that waits `wait_ms` after answer, sends `digits` (SIP INFO or RFC 4733 RTP
    events from SIPp's recorded packets) `gap_ms` apart, stays `talk_ms`, then hangs up; or,
    with `patience_ms`, stays until Asterisk hangs up or that long, whichever comes first.
    With `survey`, the caller answers the post-call survey: `survey_after_ms` after its digits
    (the agent has hung up by then) it presses that key ('' presses none), then waits for
    Asterisk to end the call (up to `patience_ms`, default 30 s).

    Digits for different menus need a gap: a digit that arrives between two AGI commands is
    not kept by Asterisk."""
    if dtmf not in ("info", "rfc4733"):
        raise ValueError(f"dtmf must be info or rfc4733, not {dtmf!r}")
    parts = [_HEAD, f'  <pause milliseconds="{wait_ms}"/>\n']
    cseq = _press(parts, digits, dtmf, gap_ms, 2)
    if survey is not None:
        parts.append(f'  <pause milliseconds="{survey_after_ms}"/>\n')
        cseq = _press(parts, survey, dtmf, 0, cseq)
        parts.append(_WAIT_OR_GIVE_UP.format(patience_ms=patience_ms or 30_000, cseq=cseq))
    elif patience_ms is not None:
        parts.append(_WAIT_OR_GIVE_UP.format(patience_ms=patience_ms, cseq=cseq))
    else:
        parts.append(_TAIL.format(talk_ms=talk_ms, cseq=cseq))
    return "".join(parts)


def _press(parts: list[str], digits: str, dtmf: str, gap_ms: int, cseq: int) -> int:
    """Append the steps that send `digits`; returns the next CSeq."""
    for index, digit in enumerate(digits):
        if index and gap_ms:
            parts.append(f'  <pause milliseconds="{gap_ms}"/>\n')
        if dtmf == "info":
            if digit not in "0123456789*#":
                raise ValueError(f"not a DTMF digit: {digit!r}")
            parts.append(_INFO.format(cseq=cseq, digit=digit))
            cseq += 1
        else:
            pcap = PCAP_DIR / f"dtmf_2833_{digit}.pcap"
            if not pcap.exists():
                raise ValueError(f"no recorded RFC 4733 packet for {digit!r} (SIPp ships 0-9)")
            parts.append(_RFC4733.format(pcap=pcap))
    return cseq


@dataclass(frozen=True)
class CallResult:
    returncode: int
    output: str


async def place_call(
    caller: str,
    sip_port: int,
    local_port: int,
    media_port: int,
    digits: str = "",
    dtmf: str = "info",
    wait_ms: int = 1500,
    talk_ms: int = 1000,
    gap_ms: int = 0,
    exten: str = "10086",
    limit_s: float = 60.0,
    patience_ms: int | None = None,
    survey: str | None = None,
    survey_after_ms: int = 0,
) -> CallResult:
    """Place one call with SIPp and wait for it to end."""
    with tempfile.TemporaryDirectory(prefix="hotline-sipp-") as tmp:
        scenario = Path(tmp) / "caller.xml"
        scenario.write_text(caller_scenario(digits, dtmf, wait_ms, talk_ms, gap_ms, patience_ms, survey,
                                            survey_after_ms))
        proc = await asyncio.create_subprocess_exec(
            require_sipp(), "-sf", str(scenario), "-s", exten, "-key", "cid", caller,
            "-m", "1", "-l", "1", "-i", "127.0.0.1", "-ci", "127.0.0.1", "-p", str(local_port),
            "-mi", "127.0.0.1", "-mp", str(media_port), "-nostdin",
            "-timeout", f"{int(limit_s)}s", "-timeout_error", "-trace_err",
            "-error_file", str(Path(tmp) / "errors.log"), f"127.0.0.1:{sip_port}",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            cwd=tmp,
        )
        out, _ = await proc.communicate()
        errors = (Path(tmp) / "errors.log").read_text(errors="replace") if (Path(tmp) / "errors.log").exists() else ""
        return CallResult(proc.returncode or 0, (out.decode(errors="replace") + errors)[-4000:])
