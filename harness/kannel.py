"""Kannel (Debian's `kannel`, `kannel-extras`) as the SMS gateway for `make up` and the tests:
bearerbox, the fake SMSC from kannel-extras, and smsbox's sendsms interface, all on loopback.

Pitfalls (learned the hard way, see shared/reference/sms-gateway): never open a probe connection
to the fake SMSC port (bearerbox takes any connection there for the SMSC and writes queued
messages to it); smsbox restarts itself with a new pid after losing bearerbox, so each daemon is
started in its own process group and stopped as a group; Chinese text needs coding=2.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from harness.procs import StackError, free_tcp_port, tcp_listening

BEARERBOX = "/usr/sbin/bearerbox"
SMSBOX = "/usr/sbin/smsbox"
FAKESMSC = "/usr/lib/kannel/test/fakesmsc"


@dataclass
class Kannel:
    run_dir: Path
    username: str = "hotline"
    password: str = "kannel-secret"
    admin_port: int = field(default_factory=free_tcp_port)
    box_port: int = field(default_factory=free_tcp_port)
    smsc_port: int = field(default_factory=free_tcp_port)
    sendsms_port: int = field(default_factory=free_tcp_port)
    status_password: str = "kannel-status"
    pids: dict[str, int] = field(default_factory=dict)

    @property
    def sendsms_url(self) -> str:
        return f"http://127.0.0.1:{self.sendsms_port}/cgi-bin/sendsms"

    @property
    def delivered_log(self) -> Path:
        """What the fake SMSC received (one `Got message` line per SMS)."""
        return self.run_dir / "fakesmsc.out"

    def config(self) -> str:
        logs = self.run_dir
        return f"""group = core
admin-port = {self.admin_port}
admin-interface = 127.0.0.1
admin-password = {self.status_password}-admin
status-password = {self.status_password}
admin-allow-ip = "127.0.0.1"
smsbox-port = {self.box_port}
smsbox-interface = 127.0.0.1
box-allow-ip = "127.0.0.1"
log-file = "{logs}/bearerbox.log"
log-level = 1
store-type = file
store-location = "{logs}/store/kannel.store"
store-dump-freq = 1
dlr-storage = internal

group = smsc
smsc = fake
smsc-id = FAKE
port = {self.smsc_port}
our-host = 127.0.0.1
connect-allow-ip = 127.0.0.1

group = smsbox
bearerbox-host = 127.0.0.1
bearerbox-port = {self.box_port}
sendsms-port = {self.sendsms_port}
sendsms-interface = 127.0.0.1
log-file = "{logs}/smsbox.log"
# Warnings only: at info level smsbox logs every number and text it sends.
log-level = 2
mo-recode = true
# A delivery report that hotline cannot take (Redis switching primaries) is fetched again.
http-request-retry = 10
http-queue-delay = 1

group = sendsms-user
username = {self.username}
password = {self.password}
max-messages = 10
concatenation = true

group = sms-service
keyword = default
text = ""
omit-empty = true
"""

    def _spawn(self, name: str, command: list[str], output: Path) -> None:
        with output.open("ab") as out:
            proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True)
        self.pids[name] = proc.pid

    def _wait_listening(self, port: int, what: str) -> None:
        for _ in range(200):
            if tcp_listening(port):
                return
            time.sleep(0.05)
        raise StackError(f"kannel: {what} did not listen on {port}; see {self.run_dir}")

    def start_bearerbox(self) -> None:
        self._spawn("bearerbox", [BEARERBOX, "-v", "2", str(self.run_dir / "kannel.conf")],
                    self.run_dir / "bearerbox.out")
        self._wait_listening(self.box_port, "bearerbox")
        self._wait_listening(self.smsc_port, "the fake SMSC port")

    def start_smsbox(self) -> None:
        """smsbox alone (the sendsms interface): stopping and starting it is how the tests take
        the gateway down and bring it back."""
        self._spawn("smsbox", [SMSBOX, "-v", "2", str(self.run_dir / "kannel.conf")], self.run_dir / "smsbox.out")
        self._wait_listening(self.sendsms_port, "smsbox")

    def start_rest(self) -> None:
        # -m 0: send no mobile-originated traffic, only take what bearerbox delivers.
        self._spawn("fakesmsc", [FAKESMSC, "-H", "127.0.0.1", "-r", str(self.smsc_port), "-m", "0",
                                 "100 200 text nop"], self.delivered_log)
        self.start_smsbox()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if "FAKE" in self.status() and "online" in self.status():
                return
            time.sleep(0.1)
        raise StackError(f"kannel: the fake SMSC did not come online; see {self.run_dir}")

    def start(self) -> Kannel:
        for binary in (BEARERBOX, SMSBOX, FAKESMSC):
            if not Path(binary).exists():
                raise StackError(f"{binary} not found: install Debian's kannel and kannel-extras (make deps)")
        (self.run_dir / "store").mkdir(parents=True, exist_ok=True)
        (self.run_dir / "kannel.conf").write_text(self.config())
        self.start_bearerbox()
        self.start_rest()
        return self

    def status(self) -> str:
        url = f"http://127.0.0.1:{self.admin_port}/status.txt?password={self.status_password}"
        try:
            with urllib.request.urlopen(url, timeout=2) as reply:
                text: str = reply.read().decode(errors="replace")
                return text
        except OSError:
            return ""

    def stop(self, *names: str) -> None:
        """Stop the named daemons (default all), each as a process group."""
        for name in names or ("smsbox", "fakesmsc", "bearerbox"):
            pid = self.pids.pop(name, None)
            if pid is None:
                continue
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGTERM)
            for _ in range(100):
                try:
                    os.killpg(pid, 0)
                except ProcessLookupError:
                    break
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, os.WNOHANG)
                time.sleep(0.05)
            else:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)


_GOT = re.compile(r"Got message (\d+): <(\S+) (\S+) (\S+) (.*)>$")


def delivered(log: Path) -> list[tuple[str, str]]:
    """(to, text) of each SMS the fake SMSC received, decoded (UCS-2 when coding=2)."""
    out = []
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines() if log.exists() else []:
        match = _GOT.search(line)
        if not match:
            continue
        _, _, to, kind, data = match.groups()
        # Form encoding: '+' is a 0x20 byte (a space, or half of a UCS-2 space); '+' itself is %2B.
        raw = urllib.parse.unquote_to_bytes(data.replace("+", "%20"))
        text = data if kind == "text" else raw.decode("utf-16-be") if kind in ("ucs-2", "ucs2") else raw.decode(
            "utf-8", "replace")
        out.append((to, text))
    return out
