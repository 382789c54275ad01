"""Who is signed in: agents' secrets (salted PBKDF2) and their sessions, kept in Redis so any
`hotline serve` instance can check a cookie another one issued."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from redis.asyncio import Redis

from hotline_core.keys import RedisKeys

SESSION_TTL_S = 12 * 3600
COOKIE = "hotline_agent"


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


class AgentSessions:
    def __init__(self, redis: Redis, prefix: str):
        self._redis = redis
        self._keys = RedisKeys(prefix)

    async def set_secret(self, agent_id: str, secret: str) -> None:
        await self._redis.hset(self._keys.agent_secrets, agent_id, hash_secret(secret))

    async def sign_in(self, agent_id: str, secret: str) -> str | None:
        """A new session token, or None when the id or the secret is wrong."""
        stored = await self._redis.hget(self._keys.agent_secrets, agent_id)
        if not stored or not secret_matches(secret, str(stored)):
            return None
        token = secrets.token_urlsafe(24)
        await self._redis.set(self._keys.screen_session(token), agent_id, ex=SESSION_TTL_S)
        return token

    async def agent_of(self, token: str) -> str | None:
        if not token:
            return None
        agent = await self._redis.get(self._keys.screen_session(token))
        return str(agent) if agent else None

    async def sign_out(self, token: str) -> None:
        if token:
            await self._redis.delete(self._keys.screen_session(token))
