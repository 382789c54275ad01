"""Peer for bench_agi.py: pyst2 AGI in a forked process per call.

Each connection is handled by a child forked from a parent that has already imported pyst2
and redis (so no interpreter start per call), with the socket as the child's stdin/stdout:
one Redis GET, then the same eleven SET VARIABLEs.
    python bench/peers/pyst2_peer.py PORT REDIS_URL
"""

from __future__ import annotations

import io
import json
import os
import socketserver
import sys

import redis
from asterisk.agi import AGI

NAMES = ("HOTLINE_TIER", "HOTLINE_TIER_LABEL", "HOTLINE_BRAND", "HOTLINE_LEVEL", "QUEUE_PRIO",
         "HOTLINE_SKILL_CHAIN", "HOTLINE_QUEUE", "HOTLINE_MAX_WAIT", "HOTLINE_GREETING", "HOTLINE_FLAGS",
         "HOTLINE_DEGRADED")



def child(redis_url: str) -> None:
    agi = AGI(stdin=io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="replace"),
              stdout=io.TextIOWrapper(sys.stdout.buffer, encoding="utf-8", write_through=True),
              stderr=io.StringIO())
    found = redis.Redis.from_url(redis_url, decode_responses=True).get(f"peer:{agi.env.get('agi_callerid', '')}")
    values = json.loads(found) if found else {"HOTLINE_TIER": "normal", "QUEUE_PRIO": "10"}
    for name in NAMES:
        agi.set_variable(name, values.get(name, ""))


class Handler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        # ForkingTCPServer has already forked: this runs in the per-call child.
        fd = self.request.fileno()
        os.dup2(fd, 0)
        os.dup2(fd, 1)
        sys.stdin = os.fdopen(0, "r")
        sys.stdout = os.fdopen(1, "w")
        child(self.server.redis_url)  # type: ignore[attr-defined]
        sys.stdout.flush()


class Server(socketserver.ForkingTCPServer):
    allow_reuse_address = True
    request_queue_size = 1024
    max_children = 200


if __name__ == "__main__":
    server = Server(("127.0.0.1", int(sys.argv[1])), Handler)
    server.redis_url = sys.argv[2]  # type: ignore[attr-defined]
    server.serve_forever()
