"""What a feature adds to `hotline serve`, declared in one place by the feature itself.

Each feature package (records, SMS, work orders, the live board, the agents' screens) has a
`feature.py` whose function builds its services from what the composition root hands it and
returns a `Feature`: its pages and APIs with the roles allowed beside them, its background loops
(run under the supervisor) and the package holding its schema migrations. The root only builds
the shared resources once and assembles features (wazo-calld's plugins are the model).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field

from aiohttp import web

Rule = tuple[str, frozenset[str]]  # a path prefix and the roles allowed under it
Work = Callable[[], Awaitable[None]]  # a background loop, started afresh by the supervisor
AGENT = frozenset({"agent"})
SUPERVISOR = frozenset({"supervisor"})
STAFF = frozenset({"agent", "handler", "supervisor"})


@dataclass(frozen=True)
class Feature:
    name: str
    routes: Sequence[web.RouteDef] = ()
    # Who may use which of its routes; a route under no rule is open (sign-in, health checks,
    # and endpoints that check a token of their own: delivery reports, /metrics).
    access: Sequence[Rule] = ()
    loops: Mapping[str, Work] = field(default_factory=dict)  # component name -> loop
    migrations: str | None = None  # the package whose migrations/ holds this feature's tables
