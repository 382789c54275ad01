"""The SMS feature: post-call messages, replies to work orders, the worker that hands them to
the gateway, and the gateway's delivery reports."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiohttp
from redis.asyncio import Redis

from agi.records import CallRecords
from hotline.sms.gateway import KannelGateway
from hotline.sms.jobs import OnceQueue, Replicas, SmsRequest
from hotline.sms.postcall import PostCallSms
from hotline.sms.reports import report_routes
from hotline.sms.worker import SmsWorker
from hotline_core.feature import Feature, Work
from hotline_core.keys import RedisKeys
from hotline_core.metrics import Metrics
from hotline_core.policy import Policy
from hotline_core.settings import Settings

OrderReply = Callable[[str, str, str], Awaitable[str | None]]  # (order marker, number, text) -> job id


@dataclass(frozen=True)
class Sms:
    feature: Feature
    post_call: PostCallSms  # told of finished calls (AMI's AgentComplete, the queue_log)
    order_reply: OrderReply  # a work order's reply, sent once


def sms_feature(settings: Settings, policy: Policy, redis: Redis, records: CallRecords, metrics: Metrics,
                replicas: Replicas, http: aiohttp.ClientSession | None) -> Sms:
    """Without a gateway (`http` None) jobs are still queued; another instance may send them."""
    prefix = settings.redis_prefix
    once = OnceQueue(redis, prefix, replicas=replicas)
    keys = RedisKeys(prefix)

    async def order_reply(marker: str, number: str, text: str) -> str | None:
        return await once.add(keys.sms_order_reply(marker), SmsRequest("order_reply", "", number, text))

    loops: dict[str, Work] = {}
    if http is not None:
        base = settings.sms_report_base or f"http://{settings.http_host}:{settings.http_port}"
        reports = f"{base}/sms/dlr?id={{id}}&status=%d&token={settings.sms_report_token}"
        gateway = KannelGateway(http, settings.sms_gateway_url, settings.sms_username, settings.sms_password,
                                reports, sender=settings.sms_sender)
        loops["sms worker"] = SmsWorker(redis, gateway, prefix, metrics=metrics,
                                        retry_window_s=settings.sms_retry_window_s, replicas=replicas,
                                        report_wait_s=settings.sms_report_wait_s).run
    # Delivery reports check a token of their own (the gateway signs in as nobody).
    routes = report_routes(redis, prefix, settings.sms_report_token, metrics) if settings.sms_report_token else []
    post_call = PostCallSms(redis, prefix, policy, records, metrics=metrics, once=once)
    return Sms(Feature("sms", routes=routes, loops=loops), post_call, order_reply)
