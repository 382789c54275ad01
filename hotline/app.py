"""The composition root: the shared resources are built here once and the features assembled.

`open_services` opens what the call path and the commands share (Redis, the pipelined
connection, the tier store and lookup, the call records, metrics). `serve` runs the FastAGI
server and, in a process that serves pages, assembles the features (each declares its routes,
access rules, loops and tables in its own `feature.py`), runs their loops under one supervisor
and serves their pages.
"""

from __future__ import annotations

import asyncio
import inspect
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import aiohttp
import asyncpg
import structlog
from aiohttp import web
from redis.asyncio import Redis
from redis.asyncio.sentinel import Sentinel
from redis.connection import parse_url
from redis.exceptions import RedisError

from agi.entry import CallEntry, EntryRoute
from agi.ivr import FlowRegistry, IvrRoute
from agi.records import CallRecords
from agi.server import FastAgiServer, Route
from agi.survey import SurveyRoute
from ami_bridge.bridge import AmiBridge, Listener
from ami_bridge.client import AmiClient
from ami_bridge.roster import Roster
from ami_bridge.seating import Seating
from asterisk_conf.render import template_dir
from hotline.monitor.feature import board_feature
from hotline.records.feature import SCHEMA as RECORDS_SCHEMA
from hotline.records.feature import records_feature
from hotline.records.partitions import ensure_partitions, months_around
from hotline.sms.feature import sms_feature
from hotline.sms.jobs import Replicas, SmsJobs, SmsRequest
from hotline.sms.postcall import TRIGGERS
from hotline.web.access import SignIn
from hotline.web.auth import Sessions
from hotline.web.feature import screens_feature
from hotline.web.pages import pages_app
from hotline.web.screen import SCREEN_EVENTS
from hotline.workorders.feature import SCHEMA as WORKORDERS_SCHEMA
from hotline.workorders.feature import workorders_feature
from hotline_core.db import Conn, Migration, check_schema, migrate, records_pool
from hotline_core.feature import Feature
from hotline_core.keys import RedisKeys
from hotline_core.loops import subscription
from hotline_core.metrics import Metrics
from hotline_core.numbers import NumberPlan
from hotline_core.policy import Policy, load_policy
from hotline_core.progress import Progress, silent
from hotline_core.redispipe import RedisPipe
from hotline_core.settings import Settings, redacted_url
from hotline_core.supervise import STOP_GRACE_S, Backoff, Supervisor
from ivr_flows.validate import queue_names, shipped_flows
from tier_lookup.reader import TierReader
from tier_lookup.service import TierLookup
from tier_lookup.store import TierStore


@dataclass(frozen=True, slots=True)
class Services:
    settings: Settings
    policy: Policy
    redis: Redis  # redis-py: imports, admin, anything not on the per-call path
    pipe: RedisPipe  # pipelined connection for the per-call path
    store: TierStore
    lookup: TierLookup
    records: CallRecords
    keys: RedisKeys
    metrics: Metrics
    now: Callable[[], datetime]  # the clock (pinned by settings.frozen_time in tests and demos)
    plan: NumberPlan
    roster: Roster
    replicas: Replicas  # SMS jobs count as accepted when this many replicas hold them (0: at once)


def clock(settings: Settings) -> Callable[[], datetime]:
    frozen = settings.frozen_time
    if frozen is not None:
        pinned = frozen if frozen.tzinfo else frozen.replace(tzinfo=UTC)
        return lambda: pinned
    return lambda: datetime.now(UTC)


def sentinels(settings: Settings, timeout_s: float) -> Sentinel:
    """The configured sentinels, each asked within `timeout_s`."""
    return Sentinel(list(settings.redis_sentinels),
                    sentinel_kwargs={"socket_connect_timeout": timeout_s, "socket_timeout": timeout_s})


# Connections each Redis client may open: the pages get a client of their own, so a flood of
# requests (a hundred junk cookies at once) cannot take the connections the SMS worker, the
# recorder and the AMI bridge need, and those cannot starve the pages.
WORKERS_REDIS_CONNECTIONS = 64
PAGES_REDIS_CONNECTIONS = 64


def redis_client(settings: Settings, max_connections: int = WORKERS_REDIS_CONNECTIONS) -> Redis:
    """A Redis client for everything but the call path's pipe. With sentinels it follows the
    primary: redis-py asks them at each connect and drops a connection that meets READONLY."""
    budget = settings.lookup_budget_ms / 1000
    # Connect quickly or not at all: a caller is waiting. Bulk commands (imports) may take
    # longer than the lookup budget, so no socket read timeout is set here; the call path
    # bounds its own waits.
    if settings.redis_sentinels:
        options = parse_url(settings.redis_url)  # type: ignore[no-untyped-call]
        asking = max(budget, 0.5)
        primary: Redis = sentinels(settings, asking).master_for(settings.redis_service, decode_responses=True,
                                             socket_connect_timeout=asking, password=options.get("password"),
                                             username=options.get("username"), db=options.get("db", 0),
                                             max_connections=max_connections)
        return primary
    return Redis.from_url(
        settings.redis_url,
        decode_responses=True,
        socket_connect_timeout=max(budget, 0.5),
        max_connections=max_connections,
    )


def primary_locator(settings: Settings) -> Callable[[], Awaitable[tuple[str, int]]] | None:
    """Where the call path's pipe connects: with sentinels, wherever they say the primary is."""
    if not settings.redis_sentinels:
        return None
    sentinel = sentinels(settings, settings.lookup_budget_ms / 1000)

    async def locate() -> tuple[str, int]:
        host, port = await sentinel.discover_master(settings.redis_service)
        return str(host), int(port)

    return locate


# Every feature's tables, in the one sequence of migrations (hotline_core.db runs them).
SCHEMAS = (RECORDS_SCHEMA, WORKORDERS_SCHEMA)


async def migrate_records(conn: Conn, today: date, progress: Progress = silent) -> list[Migration]:
    """Bring the records database to this code's schema, and this month's partitions and the
    next ones into being (`hotline db migrate`, the tests' databases)."""
    applied = await migrate(conn, SCHEMAS, progress)
    await ensure_partitions(conn, months_around(today, back=1, ahead=2))
    return applied


@asynccontextmanager
async def open_services(settings: Settings, policy: Policy | None = None,
                        multiprocess_dir: str | None = None) -> AsyncIterator[Services]:
    policy = policy or load_policy(settings.policy_file)
    budget = settings.lookup_budget_ms / 1000
    now = clock(settings)
    plan = NumberPlan(settings.country_code, settings.region)
    async with AsyncExitStack() as stack:
        redis = redis_client(settings)
        stack.push_async_callback(redis.aclose)
        pipe = RedisPipe(settings.redis_url, timeout_s=budget, locate=primary_locator(settings))
        stack.push_async_callback(pipe.close)
        store = TierStore(redis, settings.redis_prefix)
        lookup = TierLookup(TierReader(pipe, settings.redis_prefix), policy, budget_s=budget, plan=plan, clock=now)
        # Facts for the records database only where one is configured: the outbox is not filled for nobody.
        records = CallRecords(pipe, settings.redis_prefix, settings.call_record_ttl_s,
                              outbox=bool(settings.database_url))
        yield Services(settings, policy, redis, pipe, store, lookup, records, RedisKeys(settings.redis_prefix),
                       Metrics(multiprocess_dir=multiprocess_dir), now, plan, Roster(redis, settings.redis_prefix),
                       Replicas(redis, settings.redis_wait_replicas, settings.redis_wait_ms))


def call_entry(services: Services) -> CallEntry:
    return CallEntry(services.lookup, services.records, services.metrics)


def build_agi_server(services: Services, flows: FlowRegistry) -> FastAgiServer:
    settings = services.settings
    entry = call_entry(services)
    jobs = SmsJobs(services.pipe, settings.redis_prefix, services.replicas)

    async def self_service_sms(uniqueid: str, number: str, text: str) -> str:
        return await jobs.add(SmsRequest("self_service", uniqueid, number, text))

    ivr = IvrRoute(entry, flows, entry.records, self_service_sms, flow=settings.ivr_flow)
    asked = services.policy.survey
    if asked is not None and asked.enabled and asked.flow not in flows.current.flows:
        # Said once at start; the route says it again on each call it cannot survey.
        structlog.get_logger("hotline").error("the policy's survey flow is not among the flows: no survey offered",
                                              flow=asked.flow, flows=sorted(flows.current.flows))
    survey = SurveyRoute(flows, entry.records, services.policy, services.now)
    routes: dict[str, Route] = {"entry": EntryRoute(entry), "ivr": ivr, "survey": survey}
    return FastAgiServer(routes, settings.agi_idle_timeout_s, settings.agi_max_connections, services.metrics,
                         settings.agi_max_per_peer, settings.agi_environment_deadline_s)


def flows_dir(settings: Settings) -> Path:
    return settings.flows_dir or shipped_flows()


def flow_queues(settings: Settings) -> set[str] | None:
    """The queues a flow may transfer to, from the deployed (or shipped) queues.conf."""
    conf = settings.queues_conf or template_dir() / "queues.conf"
    return queue_names(conf) if conf.exists() else None


def flow_registry(settings: Settings) -> FlowRegistry:
    """The IVR flows, checked at start like the policy: a broken file stops the service."""
    return FlowRegistry(flows_dir(settings), flow_queues(settings))


async def watch_reloads(redis: Redis, channel: str, flows: FlowRegistry) -> None:
    """Reload the flows whenever `hotline flows reload` publishes (every instance hears it).
    A lost Redis connection is retried; the running flows keep serving meanwhile."""
    log = structlog.get_logger("hotline")
    while True:
        try:
            async with redis.pubsub() as pubsub:
                await pubsub.subscribe(channel)
                async for message in subscription(pubsub):
                    if message.get("type") == "message":
                        accepted = await flows.reload_async()
                        # The asker names a channel for the answers (`hotline flows reload` waits on it).
                        reply_to = str(message.get("data", ""))
                        if reply_to.startswith(channel + ":reply:"):
                            answer = f"reloaded {flows.current.version}" if accepted else (
                                f"refused; still serving {flows.current.version}")
                            await redis.publish(reply_to, answer)
        except (RedisError, OSError) as exc:
            log.warning("flow reload channel lost; retrying", error=str(exc))
            await asyncio.sleep(2.0)


def ami_bridge(services: Services, listeners: tuple[Listener, ...]) -> AmiBridge:
    settings = services.settings
    return AmiBridge(
        client_factory=lambda: AmiClient(settings.ami_host, settings.ami_port, settings.ami_username,
                                         settings.ami_secret),
        roster=services.roster,
        policy=services.policy,
        clock=services.now,
        keepalive_s=settings.ami_keepalive_s,
        reconcile_s=settings.desk_reconcile_s,
        listeners=listeners,
        metrics=services.metrics,
    )


async def records_schema_known(settings: Settings) -> bool:
    """False (and a warning) when the database cannot be reached now; SchemaError when it can
    and its schema is not this code's: the service must not write into a schema it does not know."""
    try:
        conn = await asyncpg.connect(settings.database_url, timeout=3)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        structlog.get_logger("records").warning("records database unreachable at start; calls are served and "
                                                "records wait in Redis", error=f"{type(exc).__name__}: {exc}")
        return False
    try:
        await check_schema(conn, SCHEMAS)
    finally:
        await conn.close()
    return True


async def readiness(services: Services, flows: FlowRegistry, supervisor: Supervisor) -> list[str]:
    """What keeps this instance from taking calls well right now (empty: ready)."""
    missing = []
    try:
        await asyncio.wait_for(services.redis.ping(), timeout=0.5)
    except (RedisError, OSError, TimeoutError) as exc:
        missing.append(f"Redis unreachable ({type(exc).__name__})")
    if not flows.current.flows:
        missing.append("no IVR flows loaded")
    return missing + supervisor.down()


def restart_backoff(settings: Settings) -> Backoff:
    first = settings.restart_backoff_s
    return Backoff(first_s=first, max_s=max(first, settings.restart_backoff_max_s))


# What one `hotline serve` process runs: everything, only the call path (FastAGI), or only the
# pages with the AMI bridge and the background work (`separate_pages`).
ROLES = ("all", "calls", "pages")


def call_path_compiled() -> bool:
    """Whether the call path runs as mypyc compiled it (setup.py) or from its sources: said in the
    serving line, so a benchmark or an incident report knows which code ran."""
    return inspect.getfile(CallEntry).endswith(".so")


async def serve(settings: Settings, multiprocess_dir: str | None = None, role: str = "all") -> None:
    """Run `hotline serve` until SIGINT or SIGTERM. Nothing about a call is kept in this process
    between calls, so any number of instances can serve one Asterisk."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; one of {', '.join(ROLES)}")
    log = structlog.get_logger("hotline")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    flows = flow_registry(settings)
    reloads: set[asyncio.Task[bool]] = set()  # held until done (the loop keeps only weak references)

    def reload_on_hangup() -> None:
        task = loop.create_task(flows.reload_async())
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    loop.add_signal_handler(signal.SIGHUP, reload_on_hangup)
    # Closed in reverse: the loops stop first, then what they used (pages, pool, HTTP client), then Redis.
    async with open_services(settings, multiprocess_dir=multiprocess_dir) as services, \
            AsyncExitStack() as stack, Supervisor(services.metrics, restart_backoff(settings)) as supervisor:
        supervisor.start("flow reloads", lambda: watch_reloads(services.redis, services.keys.flows_reload, flows))
        server: FastAgiServer | None = None
        if role in ("all", "calls"):
            server = build_agi_server(services, flows)
            await server.start(settings.agi_host, settings.agi_port, reuse_port=settings.workers > 1)
        http = None
        if role in ("all", "pages"):
            pages_redis = redis_client(settings, PAGES_REDIS_CONNECTIONS)
            stack.push_async_callback(pages_redis.aclose)
            sessions = Sessions(pages_redis, settings.redis_prefix)  # the pages' sign-ins, shared
            stack.callback(sessions.close)
            features = await pages_features(services, pages_redis, sessions, stack,
                                            lambda: readiness(services, flows, supervisor), multiprocess_dir,
                                            lambda: [(h.name, h.describe()) for h in supervisor.troubled()])
            for feature in features:
                for name, work in feature.loops.items():
                    supervisor.start(name, work)
            http = await stack.enter_async_context(web_server(services, pages_redis, sessions, features))
        log.info("hotline serving", role=role, redis=redacted_url(settings.redis_url), policy=str(settings.policy_file),
                 flows=str(flows_dir(settings)), flow_version=flows.current.version, http=http,
                 compiled=call_path_compiled())
        try:
            await stop.wait()
        finally:
            log.info("hotline stopping", role=role)
            await supervisor.stop(STOP_GRACE_S)
            if server is not None:
                await server.stop(STOP_GRACE_S)


async def pages_features(services: Services, pages_redis: Redis, sessions: Sessions, stack: AsyncExitStack,
                         ready: Callable[[], Awaitable[list[str]]], multiprocess_dir: str | None,
                         components_down: Callable[[], list[tuple[str, str]]]) -> list[Feature]:
    """Everything that is not the call path, as features: the agents' screens, SMS, the AMI
    bridge (queue membership, and the events screens and post-call SMS wait for), the records,
    the live board and work orders. The pages use `pages_redis`, the background work the
    services' client. What must be closed goes into `stack`."""
    settings, policy, redis = services.settings, services.policy, services.redis
    http = await stack.enter_async_context(aiohttp.ClientSession()) if settings.sms_gateway_url else None
    sms = sms_feature(settings, policy, redis, services.records, services.metrics, services.replicas, http)
    screens = screens_feature(pages_redis, settings.redis_prefix, services.records, sessions,
                              settings.streams_per_person)
    bridge = ami_bridge(services, ((TRIGGERS, sms.post_call.on_event), (SCREEN_EVENTS, screens.screens.on_event)))
    features = [screens.feature, sms.feature]
    if settings.ami_secret:
        features.append(Feature("ami", loops={"ami bridge": bridge.run}))
    else:
        structlog.get_logger("hotline").warning("no AMI secret configured: queue membership is not managed "
                                                "(set HOTLINE_AMI_SECRET)")
    pool = await stack.enter_async_context(records_pool(settings.database_url, 4)) if settings.database_url else None
    records = None
    if pool is not None:
        records = records_feature(settings, policy, redis, pool, services.now, services.roster,
                                  sms.post_call.calls_ended, services.metrics)
        features += [records.feature, workorders_feature(pool, pages_redis, settings.redis_prefix, services.records,
                                                         policy, services.plan, services.now, sms.order_reply)]
    features.append(board_feature(settings, policy, pages_redis, services.store, services.metrics, services.now, bridge,
                                  Seating(services.roster, policy, services.now),
                                  records.today_by_level if records else None, records.reachable if records else None,
                                  ready, multiprocess_dir, components_down))
    return features


@asynccontextmanager
async def web_server(services: Services, pages_redis: Redis, sessions: Sessions,
                     features: list[Feature]) -> AsyncIterator[str]:
    """The HTTP side of `hotline serve`, on loopback: sign-in and every feature's pages."""
    settings = services.settings
    sign_in = SignIn(sessions, pages_redis, settings.redis_prefix, settings.secure_cookie)
    app = pages_app(sessions, sign_in, features)
    # aiohttp starts its keep-alive timer at connect and closes a connection still waiting for a
    # complete request when it fires, however slowly bytes arrive: that is the header deadline.
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0, keepalive_timeout=settings.http_idle_timeout_s)
    await runner.setup()
    try:
        site = web.TCPSite(runner, settings.http_host, settings.http_port, reuse_port=settings.workers > 1)
        await site.start()
        yield site.name
    finally:
        await runner.cleanup()
