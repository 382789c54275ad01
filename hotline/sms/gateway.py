"""Sending one SMS through a gateway. Kannel's sendsms HTTP interface today; any other gateway
(SMPP, an operator's HTTP API) implements the same small protocol."""

from __future__ import annotations

from typing import Protocol

import aiohttp


class GatewayError(Exception):
    def __init__(self, message: str, retryable: bool):
        super().__init__(message)
        self.retryable = retryable


class SmsGateway(Protocol):
    async def send(self, job_id: str, to: str, text: str) -> None:
        """Hand one SMS to the gateway; GatewayError if it did not take it."""


class KannelGateway:
    """Kannel's /cgi-bin/sendsms. Chinese text goes as coding=2 (UCS-2 on the air): without it
    Kannel turns it into question marks and still answers 202. The job id rides in the delivery
    report URL, so a report can be matched to its job even if the send's own reply was lost."""

    def __init__(self, session: aiohttp.ClientSession, url: str, username: str, password: str,
                 dlr_url: str, sender: str = "10086", timeout_s: float = 5.0):
        self._session = session
        self._url = url
        self._auth = {"username": username, "password": password}
        self._dlr_url = dlr_url  # with {id}; Kannel fills %d with the report's status
        self._sender = sender
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)

    async def send(self, job_id: str, to: str, text: str) -> None:
        params = {**self._auth, "from": self._sender, "to": to, "text": text, "coding": "2", "charset": "UTF-8",
                  "dlr-mask": "31", "dlr-url": self._dlr_url.format(id=job_id)}
        try:
            async with self._session.get(self._url, params=params, timeout=self._timeout) as reply:
                body = await reply.text()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise GatewayError(f"gateway unreachable: {type(exc).__name__}: {exc}", retryable=True) from None
        if reply.status in (200, 202):
            return
        raise GatewayError(f"gateway refused ({reply.status}): {body.strip()[:200]}",
                           retryable=reply.status >= 500 or reply.status == 503)
