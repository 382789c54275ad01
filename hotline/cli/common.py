"""What every command group shares: exit codes, the options accepted everywhere, settings from
them, `--at` parsing, and one way to say that Redis is unreachable."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import date, datetime, tzinfo
from pathlib import Path
from typing import Any

import asyncpg
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from hotline.app import Services, open_services
from hotline_core import db
from hotline_core.policy import Policy
from hotline_core.settings import Settings, load_settings, redacted_url

EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3


class CliError(Exception):
    def __init__(self, message: str, code: int = EXIT_USAGE):
        super().__init__(message)
        self.code = code


def common_options(suppress: bool) -> argparse.ArgumentParser:
    """Options accepted before or after the subcommand (`hotline --redis-url U tiers ...` or
    `hotline tiers lookup N --redis-url U`)."""
    common = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS if suppress else None)
    common.add_argument("--config", type=Path, help="settings file (YAML); also HOTLINE_CONFIG")
    common.add_argument("--redis-url", help="Redis URL; also HOTLINE_REDIS_URL")
    common.add_argument("--policy-file", type=Path, help="operator policy (YAML); also HOTLINE_POLICY_FILE")
    common.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    common.add_argument("--log-format", choices=["auto", "json", "console"])
    return common


def settings_from(args: argparse.Namespace) -> Settings:
    cli = {"redis_url": args.redis_url, "policy_file": args.policy_file, "log_level": args.log_level,
           "log_format": args.log_format, "agi_host": getattr(args, "agi_host", None),
           "agi_port": getattr(args, "agi_port", None), "workers": getattr(args, "workers", None),
           "separate_pages": getattr(args, "separate_pages", None)}
    return load_settings(os.environ, cli, args.config)


def parse_day(text: str | None, option: str, default: date) -> date:
    """A day from the command line (YYYY-MM-DD); `default` when not given."""
    if text is None:
        return default
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise CliError(f"{option} {text!r} is not a date (YYYY-MM-DD)") from None


def parse_at(text: str | None, zone: tzinfo, option: str = "--at") -> datetime:
    """A date-time from the command line; now when not given; no offset means the policy's zone."""
    if text is None:
        return datetime.now(zone)
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise CliError(f"{option} {text!r} is not an ISO-8601 date-time (e.g. 2026-11-30T10:00)") from None
    return at if at.tzinfo else at.replace(tzinfo=zone)


@asynccontextmanager
async def redis_services(settings: Settings, policy: Policy | None = None) -> AsyncIterator[Services]:
    """The services a command needs; Redis being away becomes exit code 3 with one clear line."""
    async with open_services(settings, policy) as services:
        try:
            yield services
        except RedisConnectionError as exc:
            where = redacted_url(settings.redis_url)
            raise CliError(f"cannot reach Redis at {where}: {exc}", EXIT_UNAVAILABLE) from None
        except RedisError as exc:
            raise CliError(f"Redis error: {exc}", EXIT_UNAVAILABLE) from None


@asynccontextmanager
async def records_connection(settings: Settings) -> AsyncIterator[asyncpg.Connection[Any]]:
    """One connection to the records database; not configured or away: a clear line and code."""
    async with _records(settings, lambda url: asyncpg.connect(url, timeout=5)) as conn:
        yield conn


@asynccontextmanager
async def records_pool(settings: Settings) -> AsyncIterator[asyncpg.Pool[Any]]:
    """A small pool on the records database (for code written against a pool), same errors."""
    if not settings.database_url:
        raise CliError(NO_DATABASE)
    async with AsyncExitStack() as stack:
        try:
            pool = await stack.enter_async_context(db.records_pool(settings.database_url, 2, eager=True))
        except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
            raise CliError(unreachable(exc), EXIT_UNAVAILABLE) from None
        yield pool


NO_DATABASE = "no records database configured: set HOTLINE_DATABASE_URL (or database_url)"


def unreachable(exc: BaseException) -> str:
    return f"cannot reach the records database: {type(exc).__name__}: {exc}"


@asynccontextmanager
async def _records(settings: Settings, opening: Callable[[str], Awaitable[Any]]) -> AsyncIterator[Any]:
    if not settings.database_url:
        raise CliError(NO_DATABASE)
    try:
        opened = await opening(settings.database_url)
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        raise CliError(unreachable(exc), EXIT_UNAVAILABLE) from None
    try:
        yield opened
    finally:
        await opened.close()


def emit(data: bytes, output: Path | None, count: int, noun: str) -> None:
    """A report or export: into the file asked for (said on stdout), else onto stdout."""
    if output:
        try:
            output.write_bytes(data)
        except OSError as exc:
            raise CliError(f"cannot write {output}: {exc.strerror or exc}") from None
        print(f"{count} {noun} written to {output}")
    else:
        sys.stdout.buffer.write(data)
