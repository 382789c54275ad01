"""Redis with Sentinel on loopback, as the production topology runs it: a primary, a replica and
three sentinels (Debian's redis-sentinel), each on an ephemeral port and stopped by PID."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from harness.procs import free_tcp_port
from harness.redis_server import RedisServer, RedisServerError

SERVICE = "hotline"


def _ask(port: int, *words: str) -> bytes:
    """One inline command to a Redis or sentinel on loopback; the raw reply."""
    with socket.create_connection(("127.0.0.1", port), 1.0) as sock:
        sock.sendall((" ".join(words) + "\r\n").encode())
        time.sleep(0.02)
        return sock.recv(65536)


@dataclass
class Sentinels:
    run_dir: Path
    down_after_ms: int = 1000
    primary: RedisServer = field(init=False)
    replica: RedisServer = field(init=False)
    ports: list[int] = field(default_factory=list)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def setting(self) -> str:
        """HOTLINE_REDIS_SENTINELS for this topology."""
        return ",".join(f"127.0.0.1:{port}" for port in self.ports)

    def start(self) -> Sentinels:
        binary = shutil.which("redis-sentinel")
        if binary is None:
            raise RedisServerError("redis-sentinel not found: install Debian's redis-sentinel package (make deps)")
        # No delay before the first full sync (the default waits 5 s for more replicas to join);
        # either server may become the primary, so both carry it.
        quick = ("--repl-diskless-sync-delay", "0")
        self.primary = RedisServer(self.run_dir / "primary", extra=quick).start()
        self.replica = RedisServer(self.run_dir / "replica",
                                   extra=(*quick, "--replicaof", "127.0.0.1", str(self.primary.port))).start()
        self._wait(lambda: b"master_link_status:up" in _ask(self.replica.port, "INFO", "replication"),
                   "the replica's first sync")
        for index in range(3):
            port = free_tcp_port()
            home = self.run_dir / f"sentinel{index}"
            home.mkdir(parents=True, exist_ok=True)
            conf = home / "sentinel.conf"  # sentinel rewrites it as it learns the topology
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndaemonize no\ndir {home}\nlogfile {home / 'sentinel.log'}\n"
                f"sentinel monitor {SERVICE} 127.0.0.1 {self.primary.port} 2\n"
                f"sentinel down-after-milliseconds {SERVICE} {self.down_after_ms}\n"
                f"sentinel failover-timeout {SERVICE} 10000\nsentinel parallel-syncs {SERVICE} 1\n")
            self.processes.append(subprocess.Popen([binary, str(conf)], stdout=subprocess.DEVNULL,
                                                   stderr=subprocess.DEVNULL, start_new_session=True))
            self.ports.append(port)
        self._wait(lambda: all(self._knows_replica(p) for p in self.ports), "sentinels to see the replica")
        return self

    def _knows_replica(self, port: int) -> bool:
        with contextlib.suppress(OSError):
            return str(self.replica.port).encode() in _ask(port, "SENTINEL", "replicas", SERVICE)
        return False

    def master_port(self) -> int | None:
        """The primary's port as the first sentinel that answers says."""
        for port in self.ports:
            with contextlib.suppress(OSError, ValueError, IndexError):
                reply = _ask(port, "SENTINEL", "get-master-addr-by-name", SERVICE).split(b"\r\n")
                return int(reply[4])
        return None

    def kill_primary(self) -> None:
        assert self.primary.process is not None
        os.kill(self.primary.process.pid, signal.SIGKILL)
        self.primary.process.wait()

    def _wait(self, check: object, what: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not check():  # type: ignore[operator]
            if time.monotonic() > deadline:
                raise RedisServerError(f"waited {timeout:.0f} s for {what}")
            time.sleep(0.1)

    def wait_failover(self, old_port: int, timeout: float = 30.0) -> None:
        self._wait(lambda: self.master_port() not in (None, old_port), "a sentinel to promote the replica", timeout)

    def stop(self) -> None:
        for proc in self.processes:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)
        self.replica.stop()
        self.primary.stop()
