"""Fixed-window quotas in Redis, shared by every instance: how many of something one person (or
for one number) in an hour or a day, so that no single member of staff can turn the hotline
into a bulk SMS relay."""

from __future__ import annotations

from redis.asyncio import Redis

from hotline_core.keys import RedisKeys

# Counts one more if that stays within the limit; otherwise counts nothing and says how long until
# the window ends. One script: two instances asking at once cannot both take the last one.
_TAKE = """
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
if used >= tonumber(ARGV[1]) then
  local ttl = redis.call('TTL', KEYS[1])
  if ttl < 0 then ttl = tonumber(ARGV[2]) end
  return -ttl
end
redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[2], 'NX')
return used + 1
"""


class Quota:
    def __init__(self, redis: Redis, prefix: str):
        self._redis = redis
        self._keys = RedisKeys(prefix)
        self._script = redis.register_script(_TAKE)

    async def take(self, what: str, who: str, limit: int, window_s: int, now_s: float) -> int:
        """One more `what` for `who` if within `limit` per window of `window_s` (windows start at
        multiples of it); returns 0 when taken, else the seconds until it may be tried again."""
        window = int(now_s // window_s)
        key = self._keys.quota(what, who, window)
        answer = int(await self._script(keys=[key], args=[limit, window_s]))
        return 0 if answer > 0 else max(1, -answer)

    async def give_back(self, what: str, who: str, window_s: int, now_s: float) -> None:
        """Undo a `take` whose work turned out to be a replay of work already counted."""
        key = self._keys.quota(what, who, int(now_s // window_s))
        await self._redis.decr(key)
