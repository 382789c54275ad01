"""Run Debian's redis-server for development, tests and benchmarks: loopback only, own data
directory, stopped by PID. Production Redis is operated separately; this is not used there."""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from harness.procs import free_tcp_port, tcp_listening

# Larger listpacks keep tier buckets compact (see tier_lookup/layout.py); values up to 128 bytes
# leave room for Chinese names and a few attributes.
TUNING = ("--hash-max-listpack-entries", "512", "--hash-max-listpack-value", "128")


class RedisServerError(RuntimeError):
    pass


@dataclass
class RedisServer:
    data_dir: Path
    port: int = 0
    persist: bool = False
    binary: str = "redis-server"
    extra: tuple[str, ...] = ()  # more options, e.g. --replicaof HOST PORT
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "redis.pid"

    def command(self) -> list[str]:
        persistence = ("--appendonly", "yes", "--save", "300 1") if self.persist else ("--save", "")
        return [
            self.binary, "--bind", "127.0.0.1", "--port", str(self.port), "--protected-mode", "yes",
            "--dir", str(self.data_dir), "--pidfile", str(self.pid_file), "--logfile", str(self.data_dir / "redis.log"),
            "--daemonize", "no", *persistence, *TUNING, *self.extra,
        ]

    def start(self, timeout: float = 10.0) -> RedisServer:
        if shutil.which(self.binary) is None:
            raise RedisServerError(f"{self.binary} not found: install Debian's redis-server package (make deps)")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        for _attempt in range(5):
            if self.port == 0:
                self.port = free_tcp_port()
            elif tcp_listening(self.port):
                raise RedisServerError(f"port {self.port} on 127.0.0.1 is already in use")
            self.process = subprocess.Popen(
                self.command(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
            )
            if self._wait_ready(timeout):
                return self
            self.stop()
            self.port = 0  # an ephemeral port taken by someone else between probe and bind: try another
        log = self.data_dir / "redis.log"
        tail = log.read_text(errors="replace")[-400:] if log.exists() else ""
        raise RedisServerError(f"redis-server did not start; last log lines:\n{tail}")

    def _wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                return False
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.2) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return True
            time.sleep(0.02)
        return False

    def stop(self, timeout: float = 10.0) -> None:
        proc = self.process
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

