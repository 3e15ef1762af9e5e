"""Who is online: a user with at least one open stream, in any process."""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter

# A stream refreshes its mark at every heartbeat; a process that dies stops refreshing and
# its users drop out after this long.
TTL = 45


class LocalPresence:
    def __init__(self):
        self._streams: Counter[int] = Counter()
        self._lock = threading.Lock()

    def connect(self, user_id: int, stream_id: str) -> bool:
        """Marks the stream; True when the user just came online."""
        with self._lock:
            self._streams[user_id] += 1
            return self._streams[user_id] == 1

    def refresh(self, user_id: int, stream_id: str) -> None:
        pass

    def disconnect(self, user_id: int, stream_id: str) -> None:
        with self._lock:
            self._streams[user_id] -= 1
            if self._streams[user_id] <= 0:
                del self._streams[user_id]

    def online(self, user_ids) -> set[int]:
        with self._lock:
            return {uid for uid in user_ids if self._streams.get(uid)}


class RedisPresence:
    """One sorted set per user: stream id -> time its mark expires."""

    def __init__(self, redis_client, prefix: str):
        self.redis = redis_client
        self.prefix = prefix

    def _key(self, user_id: int) -> str:
        return f"{self.prefix}:online:{user_id}"

    def connect(self, user_id: int, stream_id: str) -> bool:
        import redis

        now = time.time()
        key = self._key(user_id)
        try:
            pipe = self.redis.pipeline()
            pipe.zremrangebyscore(key, "-inf", now)
            pipe.zadd(key, {stream_id: now + TTL})
            pipe.zcard(key)
            pipe.expire(key, TTL)
            return pipe.execute()[2] == 1
        except redis.RedisError:
            return False

    def refresh(self, user_id: int, stream_id: str) -> None:
        import redis

        key = self._key(user_id)
        try:
            pipe = self.redis.pipeline()
            pipe.zadd(key, {stream_id: time.time() + TTL})
            pipe.expire(key, TTL)
            pipe.execute()
        except redis.RedisError:
            pass

    def disconnect(self, user_id: int, stream_id: str) -> None:
        import redis

        with contextlib.suppress(redis.RedisError):
            self.redis.zrem(self._key(user_id), stream_id)

    def online(self, user_ids) -> set[int]:
        import redis

        user_ids = list(user_ids)
        if not user_ids:
            return set()
        now = time.time()
        try:
            pipe = self.redis.pipeline()
            for uid in user_ids:
                pipe.zcount(self._key(uid), now, "+inf")
            counts = pipe.execute()
        except redis.RedisError:
            return set()
        return {uid for uid, n in zip(user_ids, counts, strict=True) if n}
