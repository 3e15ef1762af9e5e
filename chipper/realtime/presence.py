"""Who is online (a user with at least one open stream, in any process) and who is watching
(a user with at least one open stream whose tab is visible): push notifications go to those
who are not."""

from __future__ import annotations

import contextlib
import threading
import time

# A stream refreshes its mark at every heartbeat; a process that dies stops refreshing and
# its users drop out after this long.
TTL = 45


class LocalPresence:
    def __init__(self):
        # user id -> {stream id: whether its tab is visible}
        self._streams: dict[int, dict[str, bool]] = {}
        self._lock = threading.Lock()

    def connect(self, user_id: int, stream_id: str) -> bool:
        """Marks the stream, visible until told otherwise; True when the user just came online."""
        with self._lock:
            streams = self._streams.setdefault(user_id, {})
            streams[stream_id] = True
            return len(streams) == 1

    def refresh(self, user_id: int, stream_id: str) -> None:
        pass

    def disconnect(self, user_id: int, stream_id: str) -> None:
        with self._lock:
            streams = self._streams.get(user_id, {})
            streams.pop(stream_id, None)
            if not streams:
                self._streams.pop(user_id, None)

    def set_visible(self, user_id: int, stream_id: str, visible: bool) -> bool:
        """Records whether the stream's tab is visible; False (and nothing recorded) for a
        stream that is not one of the user's open ones."""
        with self._lock:
            streams = self._streams.get(user_id)
            if streams is None or stream_id not in streams:
                return False
            streams[stream_id] = visible
            return True

    def online(self, user_ids) -> set[int]:
        with self._lock:
            return {uid for uid in user_ids if self._streams.get(uid)}

    def watching(self, user_ids) -> set[int]:
        with self._lock:
            return {uid for uid in user_ids if any(self._streams.get(uid, {}).values())}


# Marks a stream visible only while it is open (its mark in the online set is alive), in one
# step, so a visibility report racing with the stream's close cannot leave a mark behind.
_SHOW = """
local alive = redis.call('zscore', KEYS[1], ARGV[1])
if not alive or tonumber(alive) <= tonumber(ARGV[2]) then return 0 end
redis.call('zadd', KEYS[2], ARGV[3], ARGV[1])
redis.call('expire', KEYS[2], ARGV[4])
return 1
"""


class RedisPresence:
    """Two sorted sets per user, stream id -> time its mark expires: the open streams, and
    those of them whose tab is visible. A stream counts as visible only while it is also open."""

    def __init__(self, redis_client, prefix: str):
        self.redis = redis_client
        self.prefix = prefix
        self._show = redis_client.register_script(_SHOW)

    def _key(self, user_id: int) -> str:
        return f"{self.prefix}:online:{user_id}"

    def _visible_key(self, user_id: int) -> str:
        return f"{self.prefix}:visible:{user_id}"

    def connect(self, user_id: int, stream_id: str) -> bool:
        import redis

        now = time.time()
        key, visible = self._key(user_id), self._visible_key(user_id)
        try:
            pipe = self.redis.pipeline()
            pipe.zremrangebyscore(key, "-inf", now)
            pipe.zadd(key, {stream_id: now + TTL})
            pipe.zcard(key)
            pipe.expire(key, TTL)
            pipe.zremrangebyscore(visible, "-inf", now)
            pipe.zadd(visible, {stream_id: now + TTL})
            pipe.expire(visible, TTL)
            return pipe.execute()[2] == 1
        except redis.RedisError:
            return False

    def refresh(self, user_id: int, stream_id: str) -> None:
        import redis

        expires = time.time() + TTL
        key, visible = self._key(user_id), self._visible_key(user_id)
        try:
            pipe = self.redis.pipeline()
            pipe.zadd(key, {stream_id: expires})
            pipe.expire(key, TTL)
            # xx: a hidden tab stays hidden.
            pipe.zadd(visible, {stream_id: expires}, xx=True)
            pipe.expire(visible, TTL)
            pipe.execute()
        except redis.RedisError:
            pass

    def disconnect(self, user_id: int, stream_id: str) -> None:
        import redis

        with contextlib.suppress(redis.RedisError):
            pipe = self.redis.pipeline()
            pipe.zrem(self._key(user_id), stream_id)
            pipe.zrem(self._visible_key(user_id), stream_id)
            pipe.execute()

    def set_visible(self, user_id: int, stream_id: str, visible: bool) -> bool:
        import redis

        try:
            if not visible:
                self.redis.zrem(self._visible_key(user_id), stream_id)
                return True
            now = time.time()
            keys = [self._key(user_id), self._visible_key(user_id)]
            return bool(self._show(keys=keys, args=[stream_id, now, now + TTL, TTL]))
        except redis.RedisError:
            return False

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

    def watching(self, user_ids) -> set[int]:
        """Users with a stream that is both open and visible. When Redis cannot say, nobody
        is: a notification too many beats a message nobody hears of."""
        import redis

        user_ids = list(user_ids)
        if not user_ids:
            return set()
        now = time.time()
        try:
            pipe = self.redis.pipeline()
            for uid in user_ids:
                pipe.zrangebyscore(self._key(uid), now, "+inf")
                pipe.zrangebyscore(self._visible_key(uid), now, "+inf")
            found = pipe.execute()
        except redis.RedisError:
            return set()
        return {
            uid
            for uid, open_, visible in zip(user_ids, found[::2], found[1::2], strict=True)
            if set(open_) & set(visible)
        }
