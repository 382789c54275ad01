"""Run Debian's PostgreSQL server for development, tests and benchmarks: its own cluster in a
directory of ours, loopback only (TCP), password authentication, stopped by PID. Production runs
its PostgreSQL under its own service manager; this is not used there.

PostgreSQL refuses to run as root. As root, the cluster belongs to the `postgres` system user
(Debian's package creates it) and the server runs as that user through `setpriv`, which execs
rather than forks, so the PID we hold is the server's own.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from harness.procs import free_tcp_port, tcp_listening

USER = "hotline"
DATABASE = "hotline"


class PostgresServerError(RuntimeError):
    pass


def server_bin() -> Path:
    """Debian keeps the server binaries per major version; the newest installed one."""
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"), key=lambda p: int(p.parent.parent.name))
    if not versions:
        raise PostgresServerError("PostgreSQL server not found: install Debian's postgresql package (make deps)")
    return versions[-1].parent


@dataclass
class PostgresServer:
    data_dir: Path
    port: int = 0
    password: str = "hotline-dev"
    durable: bool = False  # tests skip fsync; `make up` keeps it
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    def url(self, database: str = DATABASE) -> str:
        return f"postgresql://{USER}:{self.password}@127.0.0.1:{self.port}/{database}"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "server.log"

    def _as_owner(self) -> list[str]:
        if os.geteuid() != 0:
            return []
        return ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--"]

    def _run(self, *command: str, env: dict[str, str] | None = None) -> None:
        done = subprocess.run([*self._as_owner(), *command], capture_output=True, text=True, check=False,
                              env={**os.environ, **(env or {})}, cwd="/")
        if done.returncode != 0:
            raise PostgresServerError(f"{Path(command[0]).name} failed: {(done.stderr or done.stdout).strip()[-600:]}")

    def _init(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            os.chown(self.data_dir, owner.pw_uid, owner.pw_gid)
            self.data_dir.chmod(0o700)
        password_file = self.data_dir / ".pw"
        password_file.write_text(self.password + "\n")
        if os.geteuid() == 0:
            os.chown(password_file, pwd.getpwnam("postgres").pw_uid, -1)
        try:
            self._run(str(server_bin() / "initdb"), "-D", str(self.data_dir / "cluster"), "-U", USER,
                      "--auth=scram-sha-256", f"--pwfile={password_file}", "-E", "UTF8", "--locale=C.UTF-8")
        finally:
            password_file.unlink(missing_ok=True)

    def command(self) -> list[str]:
        settings = {"listen_addresses": "127.0.0.1", "port": str(self.port),
                    "unix_socket_directories": str(self.data_dir / "cluster"), "logging_collector": "off",
                    "max_connections": "200", "shared_buffers": "256MB", "work_mem": "32MB"}
        if not self.durable:
            settings.update({"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"})
        options = [item for key, value in settings.items() for item in ("-c", f"{key}={value}")]
        return [*self._as_owner(), str(server_bin() / "postgres"), "-D", str(self.data_dir / "cluster"), *options]

    def start(self, timeout: float = 30.0) -> PostgresServer:
        if not (self.data_dir / "cluster" / "PG_VERSION").exists():
            if os.geteuid() == 0 and not _traversable_by_postgres(self.data_dir.parent):
                raise PostgresServerError(f"{self.data_dir.parent} is not reachable by the postgres user; "
                                          "put the cluster under a world-traversable directory")
            self._init()
        if self.port == 0:
            self.port = free_tcp_port()
        elif tcp_listening(self.port):
            raise PostgresServerError(f"port {self.port} on 127.0.0.1 is already in use")
        with self.log_file.open("ab") as log:
            self.process = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True, cwd="/")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise PostgresServerError(f"postgres exited at start; see {self.log_file}:\n"
                                          f"{self.log_file.read_text(errors='replace')[-600:]}")
            if self._ready():
                self._create_database()
                return self
            time.sleep(0.05)
        self.stop()
        raise PostgresServerError(f"postgres did not accept connections in {timeout:g} s; see {self.log_file}")

    def _ready(self) -> bool:
        done = subprocess.run([str(server_bin() / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port)],
                              check=False)
        return done.returncode == 0

    def psql(self, sql: str, database: str = "postgres") -> str:
        done = subprocess.run([str(server_bin() / "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                               "-h", "127.0.0.1", "-p", str(self.port), "-U", USER, "-d", database, "-c", sql],
                              capture_output=True, text=True, check=False,
                              env={**os.environ, "PGPASSWORD": self.password})
        if done.returncode != 0:
            raise PostgresServerError(f"psql: {done.stderr.strip()}")
        return done.stdout.strip()

    def create_database(self, name: str) -> str:
        """A database of its own (tests: one per test); returns its URL."""
        if not self.psql(f"SELECT 1 FROM pg_database WHERE datname = '{name}'"):
            self.psql(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def _create_database(self) -> None:
        self.create_database(DATABASE)

    def stop(self, timeout: float = 20.0) -> None:
        proc = self.process
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGINT)  # "fast" shutdown: clients cut, data consistent
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def remove(self) -> None:
        self.stop()
        with contextlib.suppress(OSError):
            shutil.rmtree(self.data_dir)


def _traversable_by_postgres(directory: Path) -> bool:
    for part in [directory, *directory.parents]:
        mode = part.stat().st_mode
        if not mode & 0o001:
            return False
    return True
