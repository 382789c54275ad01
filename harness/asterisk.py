"""Asterisk 22 from the Debian sid root (scripts/asterisk-root.sh), run with chroot and the
configuration rendered from asterisk_conf/. Each instance has its own config and state
directories inside the root, so several can coexist (a test run beside `make up`)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from asterisk_conf.render import AgentEndpoint, Deployment, level_queues, load_templates, render, write
from harness.procs import Managed, StackError, tcp_listening, udp_bound
from harness.sipp import SippAgent
from hotline_core.policy import load_policy

ROOT_SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "asterisk-root.sh"


def default_root() -> Path:
    if os.environ.get("HOTLINE_ASTERISK_ROOT"):
        return Path(os.environ["HOTLINE_ASTERISK_ROOT"])
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return cache / "hotline" / "asterisk-root"


def srv_deployment(sip_port: int, ami_port: int, ami_secret: str, agi_srv: str, system_name: str = "",
                   agents: Sequence[SippAgent] = (), rtp_base: int = 21000) -> Deployment:
    """One of several Asterisk servers on loopback that reach `hotline serve` by SRV records of
    `agi_srv`, with the shipped policy's level queues and the SIPp `agents` as endpoints. Its RTP
    range follows from its SIP port, so servers of one run do not share one."""
    rtp = rtp_base + (sip_port % 40) * 100
    return Deployment(sip_port=sip_port, agi_srv=agi_srv, system_name=system_name, ami_port=ami_port,
                      ami_secret=ami_secret, rtp_start=rtp, rtp_end=rtp + 99, queue_timeout=30,
                      agents=tuple(AgentEndpoint(a.name, f"{a.name}-secret", a.contact) for a in agents),
                      level_queues=level_queues(load_policy()))


def ensure_root(root: Path) -> Path:
    """The sid root with Asterisk, built by the project's script if missing (about a minute);
    the script also refuses a root whose Asterisk is not the major version asterisk_conf/ is for."""
    done = subprocess.run([str(ROOT_SCRIPT), str(root)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise StackError(f"the Asterisk root is not usable:\n{done.stderr.strip()}")
    return root


@dataclass
class Asterisk:
    root: Path
    instance: str  # names the config and state directories inside the root
    deployment: Deployment
    run_dir: Path  # pid and log files, outside the root
    extra_dialplan: str = ""  # appended to extensions.conf (benchmarks add a context of their own)

    def __post_init__(self) -> None:
        base = f"hotline-{self.instance}"
        self.deployment = replace(self.deployment, etc_dir=f"/etc/{base}", state_dir=f"/var/tmp/{base}")
        self.process = Managed(f"asterisk ({self.instance})", self.run_dir / f"asterisk-{self.instance}.pid",
                               self.run_dir / f"asterisk-{self.instance}.log")

    def _host(self, inside: str) -> Path:
        return self.root / inside.lstrip("/")

    @property
    def messages_log(self) -> Path:
        return self._host(self.deployment.state_dir) / "log" / "messages.log"

    @property
    def queue_log(self) -> Path:
        """app_queue's queue_log, where the host (and `hotline serve`) reads it."""
        return self._host(self.deployment.state_dir) / "log" / "queue_log"

    def _command(self, *args: str) -> list[str]:
        return ["chroot", str(self.root), "asterisk", "-C", f"{self.deployment.etc_dir}/asterisk.conf", *args]

    def start(self, timeout: float = 30.0) -> None:
        d = self.deployment
        if udp_bound(d.sip_port):
            raise StackError(f"UDP port {d.sip_port} (SIP) is in use: another Asterisk? `make down`, or pick a port")
        if tcp_listening(d.ami_port):
            raise StackError(f"TCP port {d.ami_port} (AMI) is in use: another Asterisk? `make down`, or pick a port")
        etc = self._host(d.etc_dir)
        state = self._host(d.state_dir)
        shutil.rmtree(etc, ignore_errors=True)
        # A fresh state each start, except the logs: queue_log is Asterisk's account of every
        # queued call and must outlive a restart, as an operator's would.
        for sub in ("run", "db", "spool", "cache"):
            shutil.rmtree(state / sub, ignore_errors=True)
        rendered = render(load_templates(), d)
        rendered["extensions.conf"] += self.extra_dialplan
        write(rendered, etc)
        # The package's own tones (ringing while queued); copied, not kept in the repository.
        shutil.copy(self.root / "etc" / "asterisk" / "indications.conf", etc / "indications.conf")
        for sub in ("run", "log", "db", "spool", "cache"):
            (state / sub).mkdir(parents=True, exist_ok=True)
        proc = self.process.start(self._command("-f"))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise StackError(f"asterisk exited during start-up; see {self.process.log_file}")
            if self.cli("core waitfullybooted", timeout=2.0) is not None:
                return
            time.sleep(0.05)
        self.stop()
        raise StackError(f"asterisk did not finish booting in {timeout:g} s; see {self.process.log_file}")

    def cli(self, command: str, timeout: float = 10.0) -> str | None:
        """Run an Asterisk CLI command; None if Asterisk is not answering."""
        try:
            done = subprocess.run(self._command("-rx", command), capture_output=True, text=True,
                                  timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            return None
        return done.stdout if done.returncode == 0 else None

    def stop(self, timeout: float = 10.0, remove_files: bool = False, gracefully: bool = False) -> None:
        """Stop Asterisk; with `remove_files`, keep its log beside the pid file and remove the
        instance's directories from the root (test instances). `gracefully` is how an operator
        takes a server out of service: new calls refused (503) while the calls in progress end,
        for up to `timeout` seconds."""
        pid = self.process.running_pid()
        if pid is not None and gracefully:
            self.cli("core stop gracefully", timeout=2.0)  # returns once the stop has begun
            deadline = time.monotonic() + timeout
            while self.process.running_pid() is not None and time.monotonic() < deadline:
                time.sleep(0.1)
        elif pid is not None:
            self.cli("core stop now", timeout=5.0)
        self.process.stop(timeout)
        if remove_files:
            if self.messages_log.exists():
                shutil.copy(self.messages_log, self.run_dir / f"asterisk-{self.instance}-messages.log")
            shutil.rmtree(self._host(self.deployment.etc_dir), ignore_errors=True)
            shutil.rmtree(self._host(self.deployment.state_dir), ignore_errors=True)

    def kill(self) -> None:
        """A crash: SIGKILL, nothing cleaned up (the next start finds the stale pid file)."""
        pid = self.process.running_pid()
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
            while self.process.running_pid() is not None:
                time.sleep(0.05)

    def restart(self) -> None:
        self.stop()
        self.start()


def inside_root(root: Path, path: str) -> Path:
    """Where `path`, as Asterisk sees it in the root, is on this machine: absolute symlinks in
    the root (Debian's alternatives) point into the root, not at the host."""
    current = Path("/")
    for part in Path(path).parts[1:]:
        candidate = root / str(current / part).lstrip("/")
        for _ in range(20):
            if not candidate.is_symlink():
                break
            target = candidate.readlink()
            inner = target if target.is_absolute() else (Path("/") / candidate.parent.relative_to(root) / target)
            candidate = root / str(Path(os.path.normpath(inner))).lstrip("/")
        current = Path("/") / candidate.relative_to(root)
    return root / str(current).lstrip("/")


def sound_dirs(root: Path) -> list[tuple[str, Path]]:
    """(prompt-name prefix, directory): the English prompts, and the operator's own under custom/."""
    found = [("", inside_root(root, "/usr/share/asterisk/sounds/en")),
             ("custom/", inside_root(root, "/usr/share/asterisk/sounds/custom"))]
    return [(prefix, path) for prefix, path in found if path.is_dir()]


def sound_dirs_setting(root: Path) -> str:
    """The root's prompt directories as the `sound_dirs` setting spells them (HOTLINE_SOUND_DIRS)."""
    return ":".join(f"{prefix}={path}" if prefix else str(path) for prefix, path in sound_dirs(root))


if __name__ == "__main__":
    # `python -m harness.asterisk sound-dirs`: for `make check`, which validates the flows'
    # prompts against the sid root's sounds.
    import sys

    if sys.argv[1:] != ["sound-dirs"]:
        sys.exit("usage: python -m harness.asterisk sound-dirs")
    print(sound_dirs_setting(default_root()))
