"""The agents' screens: the page, its event stream, and the one subscription that feeds them."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from agi.records import CallRecords
from hotline.web.auth import Sessions
from hotline.web.screen import Screens
from hotline_core.feature import AGENT, Feature


@dataclass(frozen=True)
class ScreenFeature:
    feature: Feature
    screens: Screens  # told of AgentConnect / AgentComplete by the AMI bridge


def screens_feature(redis: Redis, prefix: str, records: CallRecords, sessions: Sessions,
                    streams_per_person: int) -> ScreenFeature:
    screens = Screens(redis, prefix, records, sessions, streams_per_person)
    # The page itself signs the agent in (its own form): only its event stream needs a session.
    feature = Feature("screens", routes=screens.routes(), access=(("/agent/events", AGENT),),
                      loops={"screen fan-out": screens.fan_out})
    return ScreenFeature(feature, screens)
