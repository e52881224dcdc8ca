"""Window state in Redis: a batch's entity states loaded in one round trip, written atomically.

The keys are those of :mod:`streamscore.libs.features.online_layout`. One
micro-batch of a feature processor costs three round trips, whatever its size:

1. ``WATCH`` every state key and dedupe-record key the batch touches.
2. One server-side script returns every state hash (``HGETALL``) and every
   dedupe record (``GET``) at once.
3. The caller computes; its writes go in one ``MULTI``/``EXEC``: changed
   state fields (``HSET``/``HDEL`` plus ``EXPIRE`` so idle entities expire), the
   serving vectors and the dedupe records (the feature messages emitted).

Why ``WATCH``: an entity that is not the topic's key (a terminal, an IP, a web
user) receives events from every partition, so two processor processes may
update it at once. If any watched key changed between steps 1 and 3, ``EXEC``
does nothing and the whole batch is recomputed from fresh state (optimistic
concurrency; conflicts are counted). State and dedupe records are written in
the same transaction, so after a crash either both exist or neither does:
re-delivered events find their record and re-emit the same message, and no
aggregate counts an event twice.

A Redis error propagates: the caller does not acknowledge the batch, so no
offset is committed while Redis is away, and retries after a back-off.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError, WatchError

_LOAD = """
local n = tonumber(ARGV[1])
local out = {}
for i = 1, n do out[i] = redis.call('HGETALL', KEYS[i]) end
for i = n + 1, #KEYS do out[i] = redis.call('GET', KEYS[i]) end
return out
"""

_LOAD_SHA = hashlib.sha1(_LOAD.encode()).hexdigest()  # noqa: S324 - Redis names scripts by SHA-1

Raw = dict[bytes, bytes]
T = TypeVar("T")


@dataclass
class Writes:
    """What one batch writes (applied atomically)."""

    #: key -> (fields to set, fields to delete, TTL seconds)
    hashes: dict[str, tuple[dict[str, bytes | int], list[str], int]] = field(default_factory=dict)
    #: key -> (value, TTL seconds)
    strings: dict[str, tuple[bytes, int]] = field(default_factory=dict)


@dataclass
class Loaded:
    """The state hashes and dedupe records of one batch, as read."""

    hashes: dict[str, Raw]
    records: dict[str, bytes | None]


class ConflictLimitError(RuntimeError):
    """The batch kept conflicting with another writer (more than ``max_attempts``)."""


class FeatureStateStore:
    """Optimistic, batched access to the feature processors' Redis state."""

    def __init__(self, client: aioredis.Redis, *, max_attempts: int = 20) -> None:
        self.client = client
        self.max_attempts = max_attempts
        self.conflicts = 0

    async def transact(
        self,
        state_keys: Sequence[str],
        record_keys: Sequence[str],
        compute: Callable[[Loaded], tuple[Writes, T]],
    ) -> T:
        """Load, ``compute`` and write back atomically; recompute on a conflict.

        ``compute`` must be a pure function of what it is given (it may run
        more than once); its second result is returned once the writes landed.
        """
        keys = [*dict.fromkeys(state_keys)]
        records = [*dict.fromkeys(record_keys)]
        for _ in range(self.max_attempts):
            async with self.client.pipeline(transaction=True) as pipe:
                try:
                    await pipe.watch(*keys, *records)  # step 1
                    raw = await self._load(pipe, [*keys, *records], len(keys))  # step 2
                    loaded = Loaded(
                        {k: _pairs(v) for k, v in zip(keys, raw[: len(keys)], strict=True)},
                        dict(zip(records, raw[len(keys) :], strict=True)),
                    )
                    writes, result = compute(loaded)
                    pipe.multi()  # type: ignore[no-untyped-call]  # step 3
                    for key, (put, delete, ttl) in writes.hashes.items():
                        if delete:
                            pipe.hdel(key, *delete)
                        if put:
                            pipe.hset(key, mapping=put)
                        pipe.expire(key, ttl)
                    for key, (value, ttl) in writes.strings.items():
                        pipe.set(key, value, ex=ttl)
                    await pipe.execute()
                except WatchError:
                    self.conflicts += 1
                    continue
                return result
        raise ConflictLimitError(f"batch conflicted {self.max_attempts} times in a row")

    async def _load(self, pipe: Any, keys: list[str], n_hashes: int) -> list[Any]:
        """The script by SHA, loaded first if Redis does not know it (e.g. after a restart)."""
        try:
            raw: list[Any] = await pipe.evalsha(_LOAD_SHA, len(keys), *keys, n_hashes)
        except NoScriptError:
            await self.client.script_load(_LOAD)
            raw = await pipe.evalsha(_LOAD_SHA, len(keys), *keys, n_hashes)
        return raw


def _pairs(flat: list[bytes] | None) -> Raw:
    if not flat:
        return {}
    it = iter(flat)
    return dict(zip(it, it, strict=True))
