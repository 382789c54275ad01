"""A real DNS server on loopback (Debian's dnsmasq) serving the SRV records that list the
`hotline serve` instances, and the chroot Asterisk pointed at it.

Asterisk's hagi:// looks SRV records up through the C library's resolver, which reads
/etc/resolv.conf inside the root and always asks port 53: the server listens on port 53 of a
loopback address of its own (127.53.x.y, free per run), and the root's resolv.conf is replaced
while it runs and restored when it stops.
"""

from __future__ import annotations

import random
import shutil
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

from harness.procs import Managed, StackError


def require_dnsmasq() -> str:
    found = shutil.which("dnsmasq") or ("/usr/sbin/dnsmasq" if Path("/usr/sbin/dnsmasq").exists() else None)
    if found is None:
        raise StackError("dnsmasq not found: install Debian's dnsmasq-base package (make deps)")
    return found


def free_loopback_address() -> str:
    """A 127.53.x.y address whose port 53 is free (UDP and TCP)."""
    for _ in range(50):
        address = f"127.53.{random.randrange(256)}.{random.randrange(1, 255)}"
        try:
            for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
                with socket.socket(socket.AF_INET, kind) as probe:
                    probe.bind((address, 53))
        except OSError:
            continue
        return address
    raise StackError("no free loopback address with port 53 free (127.53.0.0/16)")


@dataclass(frozen=True)
class Srv:
    target: str  # an address, as Asterisk connects to it
    port: int
    priority: int = 0
    weight: int = 10


@dataclass
class DnsServer:
    name: str  # records are served for _agi._tcp.NAME
    records: list[Srv]
    run_dir: Path
    root: Path | None = None  # a chroot whose resolver is pointed at this server while it runs
    address: str = field(default_factory=free_loopback_address)

    def __post_init__(self) -> None:
        self.process = Managed("dnsmasq", self.run_dir / "dnsmasq.pid", self.run_dir / "dnsmasq.log")
        self._resolv: Path | None = None
        self._saved: bytes | None = None

    def start(self) -> DnsServer:
        command = [require_dnsmasq(), "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
                   "--bind-interfaces", f"--listen-address={self.address}", "--port=53", "--user=root",
                   "--log-facility=-", "--log-queries", f"--pid-file={self.run_dir / 'dnsmasq.own.pid'}"]
        command += [f"--srv-host=_agi._tcp.{self.name},{r.target},{r.port},{r.priority},{r.weight}"
                    for r in self.records]
        self.process.start(command)
        deadline = time.monotonic() + 10
        while not self._answers():
            if time.monotonic() > deadline:
                raise StackError(f"dnsmasq did not answer on {self.address}:53: "
                                 f"{self.process.log_file.read_text()[-1000:]}")
            time.sleep(0.05)
        if self.root is not None:
            self._serve_root(self.root)
        return self

    def _answers(self) -> bool:
        # A bare query for the SRV name over UDP: any reply means the server is up.
        query = (b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"
                 + b"".join(bytes([len(p)]) + p.encode() for p in f"_agi._tcp.{self.name}".split(".")) + b"\x00"
                 + b"\x00\x21\x00\x01")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(0.2)
            try:
                sock.sendto(query, (self.address, 53))
                return sock.recv(512)[:2] == b"\x12\x34"
            except OSError:
                return False

    def _serve_root(self, root: Path) -> None:
        """Point the chroot's resolver at this server until `stop`."""
        self._resolv = root / "etc" / "resolv.conf"
        if self._resolv.is_symlink():
            self._resolv.unlink()
            self._saved = b""
        else:
            self._saved = self._resolv.read_bytes() if self._resolv.exists() else b""
        self._resolv.write_text(f"nameserver {self.address}\noptions timeout:1 attempts:1\n")

    def stop(self) -> None:
        if self._resolv is not None and self._saved is not None:
            self._resolv.write_bytes(self._saved)
            self._resolv = None
        self.process.stop()
