"""The pages' application, assembled from features: sign-in and the role check once, then each
feature's routes under the access rules it declared beside them. `hotline serve` and the tests
build it here alike."""

from __future__ import annotations

from collections.abc import Sequence

from aiohttp import web

from hotline.web.access import SignIn, access_middleware
from hotline.web.auth import Sessions
from hotline_core.feature import Feature


def pages_app(sessions: Sessions, sign_in: SignIn, features: Sequence[Feature]) -> web.Application:
    rules = [rule for feature in features for rule in feature.access]
    app = web.Application(middlewares=[access_middleware(sessions, rules)])
    app.add_routes(sign_in.routes())
    for feature in features:
        app.add_routes(feature.routes)
    return app
