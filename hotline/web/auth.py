"""Who is signed in, and as what: agents (the roster's ids, with a secret set by a supervisor),
complaint handlers and supervisors (staff, kept beside the roster). Secrets are salted PBKDF2;
sessions live in Redis so any `hotline serve` instance can check a cookie another one issued."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import os
import re
import secrets
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from redis.asyncio import Redis

from hotline_core.keys import RedisKeys

SESSION_TTL_S = 12 * 3600
COOKIE = "hotline_session"
ROLES = ("agent", "handler", "supervisor")
STAFF_ROLES = ("handler", "supervisor")
# An unknown id is checked against this, so a refusal costs the same whether or not the id exists
# (the time would otherwise tell which ids do).
_NOBODY = "00" * 16 + ":" + "00" * 32
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Principal:
    role: str
    user: str

    def encode(self) -> str:
        return f"{self.role}:{self.user}"

    @classmethod
    def decode(cls, text: str) -> Principal | None:
        role, sep, user = text.partition(":")
        return cls(role, user) if sep and role in ROLES and user else None


TOKEN_BYTES = 24  # secrets.token_urlsafe(24): 32 characters of the URL-safe base64 alphabet
_TOKEN = re.compile(r"[A-Za-z0-9_-]{32}")


def possible_token(text: str) -> bool:
    """Whether `text` has the shape of a session token this service issues (pure)."""
    return _TOKEN.fullmatch(text) is not None


def hash_secret(secret: str, salt: bytes | None = None) -> str:
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", secret.encode(), salt, 100_000)
    return f"{salt.hex()}:{digest.hex()}"


def secret_matches(secret: str, stored: str) -> bool:
    salt, _, _digest = stored.partition(":")
    try:
        expected = hash_secret(secret, bytes.fromhex(salt))
    except ValueError:
        return False
    return hmac.compare_digest(expected, stored)


def lowest_priority() -> None:
    """In a hashing thread (this thread only, on Linux): the idle scheduling class, so on a busy
    box a flood of sign-ins takes the CPU the calls leave over, and a call's work that wakes up
    takes the core at once rather than after the hash's time slice; nice 19 where that class is
    not allowed."""
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (OSError, AttributeError):
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)


class Sessions:
    def __init__(self, redis: Redis, prefix: str):
        self._redis = redis
        self._keys = RedisKeys(prefix)
        # Password hashing (about 25 ms of CPU each) off the event loop, at most two at a time.
        self._hashing = ThreadPoolExecutor(2, thread_name_prefix="hotline-hash", initializer=lowest_priority)

    async def _hash(self, work: Callable[..., T], *args: str) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._hashing, work, *args)

    def close(self) -> None:
        self._hashing.shutdown(wait=False, cancel_futures=True)

    async def set_secret(self, agent_id: str, secret: str) -> None:
        """An agent's secret (the agent must be on the roster: the CLI checks). Sessions signed
        in with the old secret end."""
        await self._redis.hset(self._keys.agent_secrets, agent_id, await self._hash(hash_secret, secret))
        await self.end_sessions(agent_id)

    async def set_staff(self, user: str, role: str, secret: str) -> None:
        if role not in STAFF_ROLES:
            raise ValueError(f"role {role!r}: staff are {' or '.join(STAFF_ROLES)}")
        record = json.dumps({"role": role, "secret": await self._hash(hash_secret, secret)})
        await self._redis.hset(self._keys.staff, user, record)
        await self.end_sessions(user)

    async def remove_staff(self, user: str) -> bool:
        await self.end_sessions(user)
        return bool(await self._redis.hdel(self._keys.staff, user))

    async def remove_agent(self, agent_id: str) -> None:
        """An agent taken off the roster: their secret and their sessions go too."""
        await self._redis.hdel(self._keys.agent_secrets, agent_id)
        await self.end_sessions(agent_id)

    async def end_sessions(self, user: str) -> None:
        tokens = await self._redis.smembers(self._keys.user_sessions(user))
        async with self._redis.pipeline(transaction=True) as tx:
            for token in tokens:
                tx.delete(self._keys.screen_session(str(token)))
            tx.delete(self._keys.user_sessions(user))
            await tx.execute()

    async def staff(self) -> dict[str, str]:
        """Staff ids and their roles."""
        found = await self._redis.hgetall(self._keys.staff)
        return {str(user): json.loads(record)["role"] for user, record in found.items()}

    async def _stored(self, user: str) -> tuple[str, str] | None:
        """(role, stored secret): staff first, then agents."""
        record = await self._redis.hget(self._keys.staff, user)
        if record:
            data = json.loads(record)
            return str(data["role"]), str(data["secret"])
        stored = await self._redis.hget(self._keys.agent_secrets, user)
        return ("agent", str(stored)) if stored else None

    async def sign_in(self, user: str, secret: str) -> tuple[str, Principal] | None:
        """A new session token and who it is, or None when the id or the secret is wrong. The
        hashing runs in a low-priority thread: the event loop serves the pages meanwhile."""
        stored = await self._stored(user)
        matches = await self._hash(secret_matches, secret, stored[1] if stored else _NOBODY)
        if stored is None or not matches:
            return None
        principal = Principal(stored[0], user)
        token = secrets.token_urlsafe(TOKEN_BYTES)
        async with self._redis.pipeline(transaction=True) as tx:
            tx.set(self._keys.screen_session(token), principal.encode(), ex=SESSION_TTL_S)
            tx.sadd(self._keys.user_sessions(user), token)
            tx.expire(self._keys.user_sessions(user), SESSION_TTL_S)
            await tx.execute()
        return token, principal

    async def principal(self, token: str) -> Principal | None:
        if not possible_token(token):
            return None  # junk cookies are answered without a Redis query (a flood of them costs nothing)
        value = await self._redis.get(self._keys.screen_session(token))
        return Principal.decode(str(value)) if value else None

    async def agent_of(self, token: str) -> str | None:
        principal = await self.principal(token)
        return principal.user if principal and principal.role == "agent" else None

    async def sign_out(self, token: str) -> None:
        if possible_token(token):
            await self._redis.delete(self._keys.screen_session(token))
