"""Several `hotline serve` worker processes on one port (SO_REUSEPORT), supervised by a parent.

The bridge keeps nothing about a call in process memory, so workers need no coordination:
the kernel spreads new FastAGI connections across them. A worker that dies is replaced.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable

import structlog

log = structlog.get_logger("hotline.workers")

RESTART_BACKOFF_S = 1.0


def run_workers(count: int, work: Callable[[], None], exited: Callable[[int], None] = lambda _pid: None) -> int:
    """Fork `count` workers running `work`; return when all have stopped after SIGTERM/SIGINT.
    `exited(pid)` is told of each worker that ended (its live metrics are dropped then)."""
    children: set[int] = set()
    stopping = False

    def spawn() -> None:
        pid = os.fork()
        if pid == 0:
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                signal.signal(sig, signal.SIG_DFL)
            code = 0
            try:
                work()
            except BaseException:
                log.exception("worker failed")
                code = 1
            os._exit(code)
        children.add(pid)

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                children.discard(pid)

    def forward(signum: int, _frame: object) -> None:
        for pid in list(children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGHUP, forward)  # reload the flows in every worker
    for _ in range(count):
        spawn()
    log.info("workers started", count=count, pids=sorted(children))
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        children.discard(pid)
        exited(pid)
        if not stopping:
            log.error("worker exited; starting another", pid=pid, status=os.waitstatus_to_exitcode(status))
            time.sleep(RESTART_BACKOFF_S)
            if not stopping:  # a stop may have come during the pause: start nothing after it
                spawn()
    return 0
