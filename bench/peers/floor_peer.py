"""Floor for bench_agi.py's CPU per entry: the least a FastAGI call entry can do on uvloop.

Reads the environment block, sends one `EXEC MSet` of the eleven contract variables with fixed
values, reads the reply and closes. No Redis, no log, no record: what is left of a server's CPU
per entry above this is the work the server does for the call. Run by the bench as
    python bench/peers/floor_peer.py PORT
"""

from __future__ import annotations

import asyncio
import sys

import uvloop

NAMES = ("HOTLINE_TIER", "HOTLINE_TIER_LABEL", "HOTLINE_BRAND", "HOTLINE_LEVEL", "QUEUE_PRIO",
         "HOTLINE_SKILL_CHAIN", "HOTLINE_QUEUE", "HOTLINE_MAX_WAIT", "HOTLINE_GREETING", "HOTLINE_FLAGS",
         "HOTLINE_DEGRADED")
MSET = ("EXEC MSet " + ",".join(f"{name}=x" for name in NAMES) + "\n").encode()


class Floor(asyncio.Protocol):
    def __init__(self) -> None:
        self.buffer = b""
        self.sent = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.sent and b"\n\n" in self.buffer:
            self.sent = True
            self.buffer = self.buffer[self.buffer.index(b"\n\n") + 2 :]
            self.transport.write(MSET)
        if self.sent and b"\n" in self.buffer:
            self.transport.close()


async def main(port: int) -> None:
    server = await asyncio.get_running_loop().create_server(Floor, "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    uvloop.run(main(int(sys.argv[1])))
