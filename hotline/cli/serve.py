"""`hotline serve`: the service itself, in the foreground (a service manager keeps it running)."""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import uvloop
from prometheus_client import disable_created_metrics
from prometheus_client.multiprocess import mark_process_dead

from hotline.app import flow_registry, records_schema_known, serve
from hotline.cli.common import CliError
from hotline.workers import run_workers
from hotline_core.db import SchemaError
from hotline_core.logs import configure_logging
from hotline_core.metrics import enable_multiprocess
from hotline_core.policy import load_policy
from hotline_core.settings import Settings


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    serve_cmd = commands.add_parser("serve", help="run the FastAGI call-entry server (foreground)", parents=[common])
    serve_cmd.add_argument("--agi-host", help="listen address (default 127.0.0.1); also HOTLINE_AGI_HOST")
    serve_cmd.add_argument("--agi-port", type=int, help="listen port (default 4573); also HOTLINE_AGI_PORT")
    serve_cmd.add_argument("--workers", type=int,
                           help="worker processes sharing the port (default 1); also HOTLINE_WORKERS")
    serve_cmd.add_argument("--separate-pages", action="store_true", default=None,
                           help="pages, AMI bridge and background work in a process of their own, the call "
                                "path in the workers; also HOTLINE_SEPARATE_PAGES")


def run(args: argparse.Namespace, settings: Settings) -> int:
    # The service logs to stdout (collected by its supervisor); commands keep stdout for results.
    configure_logging(settings.log_level, settings.log_format, sys.stdout)
    # Refuse to start on a bad policy, broken flows or a records schema this code does not
    # know, before binding anything (a database that is merely away does not stop calls).
    load_policy(settings.policy_file)
    flow_registry(settings)
    if settings.database_url:
        try:
            asyncio.run(records_schema_known(settings))
        except SchemaError as exc:
            raise CliError(str(exc)) from None

    disable_created_metrics()  # type: ignore[no-untyped-call]  # no *_created series: noise here
    multiprocess: Path | None = None
    if settings.workers > 1 or settings.separate_pages:
        # Each process counts into files here; /metrics and the alarms sum them all.
        multiprocess = Path(tempfile.mkdtemp(prefix="hotline-metrics-"))
        enable_multiprocess(multiprocess)

    def work(role: str) -> Callable[[], None]:
        def run_role() -> None:
            if role == "pages":
                os.nice(settings.pages_nice)  # threads started later (password hashing) inherit it
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                runner.run(serve(settings, str(multiprocess) if multiprocess else None, role))

        return run_role

    if multiprocess is None:
        work("all")()
        return 0
    # Separate pages: one process for them, `workers` for the call path; otherwise every worker does all.
    works = [work("pages")] + [work("calls")] * settings.workers if settings.separate_pages else \
        [work("all")] * settings.workers
    try:
        return run_workers(works, exited=lambda pid: mark_process_dead(pid, str(multiprocess)))  # type: ignore[no-untyped-call]
    finally:
        shutil.rmtree(multiprocess, ignore_errors=True)
