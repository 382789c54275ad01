"""Several `hotline serve` worker processes on one port (SO_REUSEPORT), supervised by a parent.

The bridge keeps nothing about a call in process memory, so workers need no coordination:
the kernel spreads new FastAGI connections across them. A worker that dies is replaced.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import time
from collections.abc import Callable, Sequence

import structlog

log = structlog.get_logger("hotline.workers")

RESTART_BACKOFF_S = 1.0
PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def run_workers(works: Sequence[Callable[[], None]], exited: Callable[[int], None] = lambda _pid: None) -> int:
    """Fork one process for each of `works`; return when all have stopped after SIGTERM/SIGINT.
    A process that dies is replaced by one running the same work. `exited(pid)` is told of each
    one that ended (its live metrics are dropped then)."""
    children: dict[int, int] = {}  # pid -> index into works
    stopping = False

    def spawn(index: int) -> None:
        pid = os.fork()
        if pid == 0:
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                signal.signal(sig, signal.SIG_DFL)
            die_with_parent()
            code = 0
            try:
                works[index]()
            except BaseException:
                log.exception("worker failed")
                code = 1
            os._exit(code)
        children[pid] = index

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                children.pop(pid, None)

    def forward(signum: int, _frame: object) -> None:
        for pid in list(children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGHUP, forward)  # reload the flows in every worker
    for index in range(len(works)):
        spawn(index)
    log.info("workers started", count=len(works), pids=sorted(children))
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        index = children.pop(pid, -1)
        exited(pid)
        if not stopping and index >= 0:
            log.error("worker exited; starting another", pid=pid, status=os.waitstatus_to_exitcode(status))
            time.sleep(RESTART_BACKOFF_S)
            if not stopping:  # a stop may have come during the pause: start nothing after it
                spawn(index)
    return 0


def die_with_parent() -> None:
    """In a worker: be killed when the supervising parent dies, even by SIGKILL, so no worker is
    left holding the ports (Linux's PR_SET_PDEATHSIG)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL) != 0:
        log.warning("worker cannot follow its parent's death", errno=ctypes.get_errno())
    if os.getppid() == 1:  # the parent died before the call above took effect
        os._exit(1)
