"""The composition root: every long-lived resource is opened here and handed to what needs it."""

from __future__ import annotations

import asyncio
import inspect
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

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
from agi.server import FastAgiServer, Route
from ami_bridge.bridge import AmiBridge, Listener
from ami_bridge.client import AmiClient
from ami_bridge.roster import Roster
from ami_bridge.seating import Seating
from asterisk_conf.render import template_dir
from hotline.monitor.board import Board
from hotline.monitor.service import Monitor, Sources, TodayFigures
from hotline.records.ingest import QueueLogReader
from hotline.records.recorder import OutboxRecorder
from hotline.records.report import figures_by_level
from hotline.records.service import keep_partitions
from hotline.records.store import RecordStore
from hotline.sms.gateway import KannelGateway
from hotline.sms.jobs import OnceQueue, Replicas, SmsJobs, SmsRequest
from hotline.sms.postcall import TRIGGERS, PostCallSms
from hotline.sms.reports import report_routes
from hotline.sms.worker import SmsWorker
from hotline.web.access import Rule, SignIn, access_middleware
from hotline.web.auth import Sessions
from hotline.web.screen import SCREEN_EVENTS, Screens
from hotline.workorders.service import WorkOrderService
from hotline.workorders.store import WorkOrders
from hotline.workorders.web import WorkOrderPages
from hotline_core.calls import CallRecords
from hotline_core.db import check_schema
from hotline_core.keys import RedisKeys
from hotline_core.loops import every, subscription
from hotline_core.metrics import Metrics
from hotline_core.numbers import NumberPlan
from hotline_core.policy import Policy, load_policy
from hotline_core.redispipe import RedisPipe
from hotline_core.settings import Settings, redacted_url
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


def redis_client(settings: Settings) -> Redis:
    """The Redis client for everything but the call path's pipe. With sentinels it follows the
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
                                             username=options.get("username"), db=options.get("db", 0))
        return primary
    return Redis.from_url(
        settings.redis_url,
        decode_responses=True,
        socket_connect_timeout=max(budget, 0.5),
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


@asynccontextmanager
async def open_services(settings: Settings, policy: Policy | None = None,
                        multiprocess_dir: str | None = None) -> AsyncIterator[Services]:
    policy = policy or load_policy(settings.policy_file)
    budget = settings.lookup_budget_ms / 1000
    async with AsyncExitStack() as stack:
        redis = redis_client(settings)
        stack.push_async_callback(redis.aclose)
        pipe = RedisPipe(settings.redis_url, timeout_s=budget, locate=primary_locator(settings))
        stack.push_async_callback(pipe.close)
        store = TierStore(redis, settings.redis_prefix)
        lookup = TierLookup(
            TierReader(pipe, settings.redis_prefix),
            policy,
            budget_s=budget,
            plan=NumberPlan(settings.country_code, settings.region),
            clock=clock(settings),
        )
        # Facts for the records database only where one is configured: the outbox is not filled for nobody.
        records = CallRecords(pipe, settings.redis_prefix, settings.call_record_ttl_s,
                              outbox=bool(settings.database_url))
        yield Services(settings, policy, redis, pipe, store, lookup, records, RedisKeys(settings.redis_prefix),
                       Metrics(multiprocess_dir=multiprocess_dir))


def build_agi_server(services: Services, flows: FlowRegistry) -> FastAgiServer:
    settings = services.settings
    entry = call_entry(services)
    jobs = SmsJobs(services.pipe, settings.redis_prefix, sms_replicas(services))

    async def self_service_sms(uniqueid: str, number: str, text: str) -> str:
        return await jobs.add(SmsRequest("self_service", uniqueid, number, text))

    ivr = IvrRoute(entry, flows, entry.records, self_service_sms, flow=settings.ivr_flow)
    routes: dict[str, Route] = {"entry": EntryRoute(entry), "ivr": ivr}
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
        roster=Roster(services.redis, settings.redis_prefix),
        policy=services.policy,
        clock=clock(settings),
        keepalive_s=settings.ami_keepalive_s,
        reconcile_s=settings.desk_reconcile_s,
        listeners=listeners,
        metrics=services.metrics,
    )


@asynccontextmanager
async def records_pool(settings: Settings) -> AsyncIterator[asyncpg.Pool[Any]]:
    """Connections to the records database, opened lazily: a database that is away delays the
    records, never the calls."""
    pool: asyncpg.Pool[Any] = asyncpg.create_pool(settings.database_url, min_size=0, max_size=4, command_timeout=30,
                                                  timeout=5)
    await pool
    try:
        yield pool
    finally:
        try:
            await asyncio.wait_for(pool.close(), STOP_GRACE_S)  # waits for connections in use
        except TimeoutError:
            pool.terminate()


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
        await check_schema(conn)
    finally:
        await conn.close()
    return True


def records_tasks(services: Services, pool: asyncpg.Pool[Any],
                  post_call: PostCallSms) -> list[Coroutine[Any, Any, None]]:
    settings = services.settings
    store = RecordStore(pool)
    now = clock(settings)
    work: list[Coroutine[Any, Any, None]] = [
        OutboxRecorder(services.redis, settings.redis_prefix, store).run(),
        keep_partitions(pool, lambda: now().astimezone(services.policy.zone).date(),
                        settings.records_retention_months),
    ]
    if settings.queue_log_file is not None:
        seating = Seating(Roster(services.redis, settings.redis_prefix), services.policy, now)

        async def calls_ended(uniqueids: list[str]) -> None:
            # As if AMI had said so: queued once per call whichever of the two gets there first.
            for uniqueid in uniqueids:
                await post_call.on_event({"Event": "AgentComplete", "Uniqueid": uniqueid})

        work.append(QueueLogReader(store, settings.queue_log_file, settings.queue_log_source, seating,
                                   completed=calls_ended, completed_within_s=settings.sms_retry_window_s).run())
    return work


# Path prefixes and the roles allowed there; anything else is open (the sign-in page, the
# agent page's own sign-in form, health checks, delivery reports and /metrics, which check a
# token of their own).
STOP_GRACE_S = 3.0  # how long a stopping part may take before it is cut off

EVERYONE = frozenset({"agent", "handler", "supervisor"})
ACCESS: tuple[Rule, ...] = (
    ("/agent/events", frozenset({"agent"})),
    ("/api/screen", frozenset({"agent"})),
    ("/board", frozenset({"supervisor"})),
    ("/api/workorders", EVERYONE),  # which orders each may see: hotline.workorders
    ("/workorders", EVERYONE),
)


@asynccontextmanager
async def web_server(services: Services, sessions: Sessions, pages: list[web.RouteDef]) -> AsyncIterator[str]:
    """The HTTP side of `hotline serve`, on loopback: sign-in, agents' screens, the live board,
    metrics and health, the gateway's delivery reports. Who may see what: ACCESS, checked once."""
    settings = services.settings
    app = web.Application(middlewares=[access_middleware(sessions, ACCESS)])
    app.add_routes(SignIn(sessions, services.redis, settings.redis_prefix, settings.secure_cookie).routes())
    app.add_routes(pages)
    if settings.sms_report_token:
        app.add_routes(report_routes(services.redis, settings.redis_prefix, settings.sms_report_token,
                                     services.metrics))
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


def monitor(services: Services, bridge: AmiBridge, pool: asyncpg.Pool[Any] | None) -> Monitor:
    settings, policy = services.settings, services.policy
    now = clock(settings)

    async def tables() -> dict[str, datetime | None]:
        return {s.table: s.imported for s in await services.store.stats()}

    async def sms_dead() -> int:
        return int(await services.redis.xlen(services.keys.sms_dead))

    async def redis_up() -> bool:
        return bool(await services.redis.ping())

    today: TodayFigures | None = None
    postgres_up: Callable[[], Awaitable[bool]] | None = None
    if pool is not None:
        records_pool_ = pool

        async def today_by_level() -> dict[str, dict[str, Any]]:
            async with records_pool_.acquire() as conn:
                return await figures_by_level(conn, policy, now().astimezone(policy.zone).date())

        async def postgres_ping() -> bool:
            return bool(await records_pool_.fetchval("SELECT true"))

        today, postgres_up = today_by_level, postgres_ping
    sources = Sources(model=bridge.model, changed=bridge.model_changed,
                      desks=Seating(Roster(services.redis, settings.redis_prefix), policy, now), today=today,
                      tables=tables, sms_dead=sms_dead, redis_up=redis_up, postgres_up=postgres_up,
                      ami_up=lambda: bridge.connected.is_set() if settings.ami_secret else None)
    return Monitor(policy, sources, services.metrics, now)


async def readiness(services: Services, flows: FlowRegistry) -> list[str]:
    """What keeps this instance from taking calls well right now (empty: ready)."""
    missing = []
    try:
        await asyncio.wait_for(services.redis.ping(), timeout=0.5)
    except (RedisError, OSError, TimeoutError) as exc:
        missing.append(f"Redis unreachable ({type(exc).__name__})")
    if not flows.current.flows:
        missing.append("no IVR flows loaded")
    return missing


def sms_replicas(services: Services) -> Replicas:
    """SMS jobs count as accepted when this many replicas hold them (0: at once, one Redis)."""
    return Replicas(services.redis, services.settings.redis_wait_replicas, services.settings.redis_wait_ms)


def sms_once(services: Services) -> OnceQueue:
    """Once-only SMS jobs, accepted when the configured replicas hold them."""
    return OnceQueue(services.redis, services.settings.redis_prefix, replicas=sms_replicas(services))


def work_orders(services: Services, pool: asyncpg.Pool[Any]) -> WorkOrderService:
    settings = services.settings
    once = sms_once(services)

    async def send_reply(marker: str, number: str, text: str) -> str | None:
        return await once.add(services.keys.sms_order_reply(marker), SmsRequest("order_reply", "", number, text))

    return WorkOrderService(WorkOrders(pool), services.records, services.policy,
                            NumberPlan(settings.country_code, settings.region), clock(settings), send_reply)


async def sweep_replies(orders: WorkOrderService, every_s: float = 30.0) -> None:
    """Replies committed whose SMS a crash kept from being queued go out here (once: marked)."""
    log = structlog.get_logger("workorders")

    async def sweep() -> None:
        sent = await orders.send_pending_replies()
        if sent:
            log.info("reply SMS queued after the fact", orders=sent)

    await every(every_s, sweep, "reply sweep", first_s=every_s)


def sms_worker(services: Services, session: aiohttp.ClientSession) -> SmsWorker:
    settings = services.settings
    base = settings.sms_report_base or f"http://{settings.http_host}:{settings.http_port}"
    reports = f"{base}/sms/dlr?id={{id}}&status=%d&token={settings.sms_report_token}"
    gateway = KannelGateway(session, settings.sms_gateway_url, settings.sms_username, settings.sms_password,
                            reports, sender=settings.sms_sender)
    return SmsWorker(services.redis, gateway, settings.redis_prefix, metrics=services.metrics,
                     retry_window_s=settings.sms_retry_window_s, replicas=sms_replicas(services),
                     report_wait_s=settings.sms_report_wait_s)


def call_entry(services: Services) -> CallEntry:
    return CallEntry(services.lookup, services.records, services.metrics)


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
    async with open_services(settings, multiprocess_dir=multiprocess_dir) as services, AsyncExitStack() as stack:
        tasks = [asyncio.create_task(watch_reloads(services.redis, services.keys.flows_reload, flows))]
        server: FastAgiServer | None = None
        if role in ("all", "calls"):
            server = build_agi_server(services, flows)
            await server.start(settings.agi_host, settings.agi_port, reuse_port=settings.workers > 1)
        http = await serve_pages(services, flows, stack, tasks, multiprocess_dir) if role in ("all", "pages") else None
        log.info("hotline serving", role=role, redis=redacted_url(settings.redis_url), policy=str(settings.policy_file),
                 flows=str(flows_dir(settings)), flow_version=flows.current.version, http=http,
                 compiled=call_path_compiled())
        try:
            await stop.wait()
        finally:
            log.info("hotline stopping", role=role)
            for task in tasks:
                task.cancel()
            # Wait for them to finish cancelling, so nothing still runs on what the stack closes
            # next; but a stop must not hang on one that will not (a service manager would kill us).
            _done, stuck = await asyncio.wait(tasks, timeout=STOP_GRACE_S)
            if stuck:
                log.warning("tasks still stopping; leaving them", tasks=sorted(repr(t.get_coro()) for t in stuck))
            if server is not None:
                await server.stop(STOP_GRACE_S)


async def serve_pages(services: Services, flows: FlowRegistry, stack: AsyncExitStack,
                      tasks: list[asyncio.Task[Any]], multiprocess_dir: str | None) -> str:
    """Start what is not the call path: the AMI bridge (queue membership, screens, post-call
    SMS), the records, the live board, the pages and the SMS worker. Their tasks go into `tasks`,
    what must be closed into `stack`; returns the pages' address."""
    settings = services.settings
    log = structlog.get_logger("hotline")
    post_call = PostCallSms(services.redis, settings.redis_prefix, services.policy, services.records,
                            metrics=services.metrics, once=sms_once(services))
    sessions = Sessions(services.redis, settings.redis_prefix)
    stack.callback(sessions.close)
    screens = Screens(services.redis, settings.redis_prefix, services.records, sessions)
    tasks.append(asyncio.create_task(screens.fan_out()))
    bridge = ami_bridge(services, ((TRIGGERS, post_call.on_event), (SCREEN_EVENTS, screens.on_event)))
    if settings.ami_secret:
        tasks.append(asyncio.create_task(bridge.run()))
    else:
        log.warning("no AMI secret configured: queue membership is not managed (set HOTLINE_AMI_SECRET)")
    pool = await stack.enter_async_context(records_pool(settings)) if settings.database_url else None
    if pool is not None:
        tasks += [asyncio.create_task(work) for work in records_tasks(services, pool, post_call)]
    live = monitor(services, bridge, pool)
    tasks.append(asyncio.create_task(live.run()))
    board = Board(live, services.metrics, settings.metrics_token, multiprocess_dir,
                  lambda: readiness(services, flows))
    pages = screens.routes() + board.routes()
    if pool is not None:
        orders = work_orders(services, pool)
        pages += WorkOrderPages(orders, services.redis, settings.redis_prefix, services.records,
                                services.policy).routes()
        tasks.append(asyncio.create_task(sweep_replies(orders)))
    http: str = await stack.enter_async_context(web_server(services, sessions, pages))
    if settings.sms_gateway_url:
        session = await stack.enter_async_context(aiohttp.ClientSession())
        tasks.append(asyncio.create_task(sms_worker(services, session).run()))
    return http
