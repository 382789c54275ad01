"""`hotline status`: the live board in the terminal, one screen, for an engineer on a server.
It asks Asterisk (AMI QueueStatus), Redis and the records database itself, so it works whether
or not `hotline serve` runs here."""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from datetime import UTC, datetime
from typing import Any

import asyncpg

from ami_bridge.client import AmiClient, AmiError
from ami_bridge.model import QueueModel
from ami_bridge.seating import Seating
from hotline.app import Services
from hotline.cli.common import redis_services
from hotline.monitor.alarms import Conditions, candidates
from hotline.monitor.snapshot import build_snapshot, status_text
from hotline.records.report import figures_by_level
from hotline_core.settings import Settings


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    status = commands.add_parser("status", help="the live board in the terminal", parents=[common])
    status.add_argument("--json", action="store_true", help="one JSON object (the board's own)")


def run(args: argparse.Namespace, settings: Settings) -> int:
    return asyncio.run(_run(args, settings))


async def _queues(settings: Settings) -> QueueModel | None:
    model = QueueModel()
    if not settings.ami_secret:
        return None
    client = AmiClient(settings.ami_host, settings.ami_port, settings.ami_username, settings.ami_secret)
    try:
        await asyncio.wait_for(client.connect(), 5)
        reply = await asyncio.wait_for(client.action({"Action": "QueueStatus"}, as_list=True), 10)
    except (AmiError, OSError, TimeoutError):
        return None
    finally:
        await client.close()
    model.resync(reply if isinstance(reply, list) else [reply], time.time())
    return model


async def _today(settings: Settings, services: Services) -> dict[str, dict[str, Any]] | None:
    if not settings.database_url:
        return None
    policy = services.policy
    day = services.now().astimezone(policy.zone).date()
    try:
        conn = await asyncpg.connect(settings.database_url, timeout=5)
    except (OSError, TimeoutError, asyncpg.PostgresError):
        return None
    try:
        return await figures_by_level(conn, policy, day, datetime.now(UTC))
    finally:
        await conn.close()


async def _run(args: argparse.Namespace, settings: Settings) -> int:
    async with redis_services(settings) as services:
        model = await _queues(settings)
        today = await _today(settings, services)
        tables = {s.table: s.imported for s in await services.store.stats()}
        dead = int(await services.redis.xlen(services.keys.sms_dead))
        now = services.now()
        ami_up = None if not settings.ami_secret else model is not None
        conditions = Conditions({lv: f.get("service_level") for lv, f in (today or {}).items()}, tables, ami_up,
                                dead, 0, 0)
        # One look, no history: every condition true now is shown (the service also waits for a
        # level to stay under target for the configured minutes before it alarms).
        alarms = candidates(conditions, services.policy, now)
        seating = Seating(services.roster, services.policy, services.now)
        snapshot = build_snapshot(services.policy, model or QueueModel(), await seating(), today, alarms, ami_up, now)
    print(json.dumps(snapshot.to_json(), ensure_ascii=False) if args.json else status_text(snapshot))
    return 0
