"""A scripted Asterisk Manager Interface peer on loopback, for tests of what the AMI bridge does
with what a real Asterisk may send: it signs anyone in, answers Ping, answers QueueStatus with
whatever the test scripts (malformed fields included), accepts queue changes and keeps every
action it was sent."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

Message = dict[str, str]
StatusScript = Callable[[int], list[Message]]  # the n-th QueueStatus (from 1) -> its events


def encode(message: Message) -> bytes:
    return b"".join(f"{key}: {value}\r\n".encode() for key, value in message.items()) + b"\r\n"


def decode(block: bytes) -> Message:
    message: Message = {}
    for line in block.decode(errors="replace").split("\r\n"):
        key, sep, value = line.partition(":")
        if sep:
            message[key.strip()] = value.strip()
    return message


class ScriptedAmi:
    def __init__(self, queue_status: StatusScript):
        self._queue_status = queue_status
        self.actions: list[Message] = []
        self.status_asked = 0
        self.logins = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in list(self._writers):
                writer.close()
            await self._server.wait_closed()

    def sent(self, action: str) -> list[Message]:
        return [a for a in self.actions if a.get("Action", "").lower() == action.lower()]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        writer.write(b"Asterisk Call Manager/9.0.0\r\n")
        try:
            while True:
                try:
                    block = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                action = decode(block)
                self.actions.append(action)
                writer.write(self._answer(action))
                await writer.drain()
        finally:
            self._writers.discard(writer)
            writer.close()

    def _answer(self, action: Message) -> bytes:
        ident = {"ActionID": action.get("ActionID", "")}
        name = action.get("Action", "").lower()
        if name == "login":
            self.logins += 1
            return encode({"Response": "Success", **ident, "Message": "Authentication accepted"})
        if name == "queuestatus":
            self.status_asked += 1
            events = self._queue_status(self.status_asked)
            out = encode({"Response": "Success", **ident, "EventList": "start", "Message": "Queue status will follow"})
            out += b"".join(encode({**event, **ident}) for event in events)
            return out + encode({"Event": "QueueStatusComplete", **ident, "EventList": "Complete",
                                 "ListItems": str(len(events))})
        if name == "ping":
            return encode({"Response": "Success", **ident, "Ping": "Pong"})
        return encode({"Response": "Success", **ident, "Message": "done"})
