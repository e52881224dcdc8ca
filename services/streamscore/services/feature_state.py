"""Window state in Redis: a batch's entity states loaded in one round trip, written atomically.

The keys are those of :mod:`streamscore.libs.features.online_layout`. One
micro-batch of a feature processor costs three round trips, whatever its size:

1. ``WATCH`` every state key and dedupe-record key the batch touches.
2. One server-side script returns every dedupe record (``GET``) and every
   state hash (``HGETALL``) — except those this process holds in its cache at
   the hash's current version (field ``ver``), for which it answers ``1``.
3. The caller computes; its writes go in one ``MULTI``/``EXEC``: changed
   state fields (``HSET``/``HDEL``, ``HINCRBY ver`` and ``EXPIRE`` so idle
   entities expire), the serving vectors and the dedupe records (the feature
   messages emitted).

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

On Redis Cluster
----------------
A transaction, a ``WATCH`` and a script's keys must all be in one hash slot,
and a batch touches entities on every node. Each entity's keys share one slot
(hash tag ``{<group>:<id>}``, :mod:`streamscore.libs.features.online_layout`),
so the batch is split by slot; the calls of all slots of one node go in one
pipeline, the nodes in parallel (:mod:`.cluster_calls`). Four round trips,
each to every node at once (one more than on one server):

C1. The load script once per slot (that slot's states and dedupe records).
C2. The caller computes, as above.
C3. A compare-and-set write script once per slot: it checks that the version
    (``ver``) of every state hash of the slot the batch read is still the one
    it computed from, and only then applies that slot's state changes and
    serving vectors (atomic per slot: ``WATCH`` without ``WATCH``). If any
    slot refuses, the batch is recomputed from fresh state. It goes in two
    rounds when the batch spans slots: C3a the same script with no writes
    (checks only; a refusal leaves nothing written, as on one server), then
    C3b with the writes. A writer that lands between C3a and C3b (a round
    trip, instead of the whole computation) still refuses C3b on its slot.
C4. Only then the dedupe records (``SET ... EX``; each in its event id's slot).

Atomicity is per slot, not per batch. What that costs, and why it stays
correct: the records are written after every state (C4 after C3), so a crash
in between leaves states without records; the redelivered events are then
recomputed, and each entity's window engine ignores an event id it already
holds (``dedupe`` on the events input), so no aggregate counts an event twice.
The same holds when C3b is refused on one slot after others were applied
(another processor wrote a shared entity between C3a and C3b): the
recomputation finds the event already in the applied entities. The feature values of such an
event are then read from state that already holds it: its reads of the
entity's history before the event (time since the previous event, z-score
against the window) differ from a single-server run, its counts and sums do
not (``test_redis_cluster.py`` pins both). Without concurrent writers to one
entity (one processor per stream, or entities keyed like the topic) C3 is
never refused, and a writer during the computation is caught by C3a: the
results equal a single server's then.
"""

from __future__ import annotations

import hashlib
import struct
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.exceptions import NoScriptError, WatchError

from streamscore.services.cluster_calls import Call, hash_slot, send_async

_LOAD = """
local n = tonumber(ARGV[1])
local out = {}
for i = 1, n do
  local cached = ARGV[i + 1]
  if cached ~= '' and redis.call('HGET', KEYS[i], 'ver') == cached then
    out[i] = 1
  else
    out[i] = redis.call('HGETALL', KEYS[i])
  end
end
for i = n + 1, #KEYS do out[i] = redis.call('GET', KEYS[i]) end
return out
"""
# One script applies every write of a batch: the client sends one command
# instead of a dozen per event (what dominated the processor's time), and its
# one argument holds every value, each prefixed by its length (4 bytes, big
# endian; split in Lua with Redis' built-in ``struct``): packing thousands of
# separate command arguments cost the client more than the computation.
# Redis' cmsgpack would do, but it refuses MessagePack's binary type. The
# values: n_hashes, then per hash: key index, ttl, n_put, n_del, the n_del
# fields to delete, the n_put field/value pairs; then n_strings, and per
# string: key index, ttl, value (numbers as decimal text).
_WRITE_BODY = """
while pos <= #s do
  local len
  len, pos = struct.unpack('>I4', s, pos)
  a[#a + 1] = string.sub(s, pos, pos + len - 1)
  pos = pos + len
end
local i = 2
for _ = 1, tonumber(a[1]) do
  local k, ttl = KEYS[tonumber(a[i])], a[i + 1]
  local np, nd = tonumber(a[i + 2]), tonumber(a[i + 3])
  i = i + 4
  if nd > 0 then redis.call('HDEL', k, unpack(a, i, i + nd - 1)) end
  i = i + nd
  if np > 0 then redis.call('HSET', k, unpack(a, i, i + 2 * np - 1)) end
  i = i + 2 * np
  redis.call('HINCRBY', k, 'ver', 1)
  redis.call('EXPIRE', k, ttl)
end
local ns = tonumber(a[i])
i = i + 1
for _ = 1, ns do
  redis.call('SET', KEYS[tonumber(a[i])], a[i + 2], 'EX', a[i + 1])
  i = i + 3
end
return ns
"""
_WRITE = "\nlocal s, a, pos = ARGV[1], {}, 1" + _WRITE_BODY
# The cluster variant of the write (one call per slot, see "On Redis Cluster"):
# ARGV[1] = n, ARGV[2..n+1] = the versions the batch computed from of KEYS[1..n]
# (the slot's state hashes; "0": absent); the writes only happen if every
# version is still current (a compare-and-set instead of WATCH), else it
# returns -1 and changes nothing. The last argument is the packed writes.
_WRITE_CAS = (
    """
local n = tonumber(ARGV[1])
for i = 1, n do
  if (redis.call('HGET', KEYS[i], 'ver') or '0') ~= ARGV[i + 1] then return -1 end
end
local s, a, pos = ARGV[n + 2], {}, 1"""
    + _WRITE_BODY
)
_LOAD_SHA = hashlib.sha1(_LOAD.encode()).hexdigest()  # noqa: S324 - Redis names scripts by SHA-1
_LEN = struct.Struct(">I")
_WRITE_SHA = hashlib.sha1(_WRITE.encode()).hexdigest()  # noqa: S324
_WRITE_CAS_SHA = hashlib.sha1(_WRITE_CAS.encode()).hexdigest()  # noqa: S324
#: The version field of every state hash, incremented by each write.
VERSION_FIELD = b"ver"

Raw = dict[bytes, bytes]
S = TypeVar("S")
T = TypeVar("T")


@dataclass
class Writes:
    """What one batch writes (applied atomically)."""

    #: key -> (fields to set, fields to delete, TTL seconds)
    hashes: dict[str, tuple[dict[str, bytes | int], list[str], int]] = field(default_factory=dict)
    #: key -> (value, TTL seconds)
    strings: dict[str, tuple[bytes, int]] = field(default_factory=dict)


class ConflictLimitError(RuntimeError):
    """The batch kept conflicting with another writer (more than ``max_attempts``)."""


class FeatureStateStore(Generic[S]):
    """Optimistic, batched access to the feature processors' Redis state, with a state cache.

    ``decode(key, raw)`` turns a hash into a state object. Decoded states are
    cached with the hash's version: a batch then loads only the states whose
    version moved (another process wrote them, or they expired), and the
    script answers ``1`` instead of the hash for the others. Entries of a
    batch that failed or conflicted are dropped (the computation may have
    mutated them), as is everything on :meth:`forget` (a rebalance).
    """

    def __init__(
        self,
        client: aioredis.Redis,
        decode: Callable[[str, Raw], S],
        *,
        max_attempts: int = 20,
        cache_size: int = 50_000,
    ) -> None:
        self.client = client
        self.decode = decode
        self.max_attempts = max_attempts
        self.cache_size = cache_size
        self.cache: OrderedDict[str, tuple[int, S]] = OrderedDict()
        self.conflicts = 0
        self.loads = 0
        self.hits = 0

    def forget(self) -> None:
        self.cache.clear()

    async def transact(
        self,
        state_keys: Sequence[str],
        record_keys: Sequence[str],
        compute: Callable[[dict[str, S], dict[str, bytes | None]], tuple[Writes, T]],
    ) -> T:
        """Load, ``compute`` and write back atomically; recompute on a conflict.

        ``compute(states, records)`` may mutate the states it is given (they
        are the cached objects) and may run more than once; its second result
        is returned once the writes landed.
        """
        keys = [*dict.fromkeys(state_keys)]
        records = [*dict.fromkeys(record_keys)]
        if isinstance(self.client, AsyncRedisCluster):
            return await self._transact_cluster(self.client, keys, records, compute)
        for _ in range(self.max_attempts):
            async with self.client.pipeline(transaction=True) as pipe:
                try:
                    await pipe.watch(*keys, *records)  # step 1
                    states, versions, loaded = await self._load(pipe, keys, records)  # step 2
                    writes, result = compute(states, loaded)
                    pipe.multi()  # type: ignore[no-untyped-call]  # step 3
                    if writes.hashes or writes.strings:
                        wkeys, wargs = _write_args(writes)
                        pipe.evalsha(_WRITE_SHA, len(wkeys), *wkeys, wargs)
                    await pipe.execute()
                except WatchError:
                    self.conflicts += 1
                    self._drop(keys)
                    continue
                except NoScriptError:  # Redis restarted between the load and the write
                    self._drop(keys)
                    await self._load_scripts()
                    continue
                except BaseException:
                    self._drop(keys)
                    raise
                self._remember(keys, states, versions, writes)
                return result
        raise ConflictLimitError(f"batch conflicted {self.max_attempts} times in a row")

    async def _transact_cluster(
        self,
        client: AsyncRedisCluster,
        keys: list[str],
        records: list[str],
        compute: Callable[[dict[str, S], dict[str, bytes | None]], tuple[Writes, T]],
    ) -> T:
        """:meth:`transact` on Redis Cluster (steps C1 to C4 of the module doc)."""
        slot_of = {k: hash_slot(k) for k in (*keys, *records)}
        for _ in range(self.max_attempts):
            try:
                states, versions, loaded = await self._load_cluster(client, keys, records, slot_of)
                writes, result = compute(states, loaded)  # C2
                record_set = set(records)
                per_slot = self._per_slot(writes, versions, record_set, slot_of)
                record_writes = {k: v for k, v in writes.strings.items() if k in record_set}
                # C3a only when the batch spans slots (one slot's C3b checks it all at once).
                checked = len(per_slot) < 2 or await self._check_cluster(client, per_slot, versions)
                if checked and await self._write_cluster(client, per_slot, versions, record_writes):
                    self._remember(keys, states, versions, writes)
                    return result
                self.conflicts += 1  # a slot's versions moved: recompute everything
                self._drop(keys)
            except NoScriptError:  # a node restarted (or is new): load, then start over
                self._drop(keys)
                await self._load_scripts()
            except BaseException:
                self._drop(keys)
                raise
        raise ConflictLimitError(f"batch conflicted {self.max_attempts} times in a row")

    async def _load_cluster(
        self,
        client: AsyncRedisCluster,
        keys: list[str],
        records: list[str],
        slot_of: dict[str, int],
    ) -> tuple[dict[str, S], dict[str, int], dict[str, bytes | None]]:
        """C1: the load script once per slot, pipelined per node (one round trip per node)."""
        by_slot: dict[int, tuple[list[str], list[str]]] = {}
        for k in keys:
            by_slot.setdefault(slot_of[k], ([], []))[0].append(k)
        for k in records:
            by_slot.setdefault(slot_of[k], ([], []))[1].append(k)
        cached = {k: self.cache.get(k) for k in keys}
        calls: list[Call] = []
        for slot, (skeys, srecords) in by_slot.items():
            args: list[str | int] = [len(skeys)]
            for k in skeys:
                c = cached[k]
                args.append("" if c is None else str(c[0]))
            n = len(skeys) + len(srecords)
            calls.append((slot, ("EVALSHA", _LOAD_SHA, n, *skeys, *srecords, *args)))
        replies = await send_async(client, calls)
        raw: dict[str, Any] = {}
        for (skeys, srecords), reply in zip(by_slot.values(), replies, strict=True):
            if isinstance(reply, Exception):
                raise reply  # NoScriptError is handled by the caller
            raw.update(zip([*skeys, *srecords], reply, strict=True))
        states: dict[str, S] = {}
        versions: dict[str, int] = {}
        for k in keys:
            r, c = raw[k], cached[k]
            if r == 1 and c is not None:
                self.hits += 1
                versions[k], states[k] = c
            else:
                self.loads += 1
                fields = _pairs(r)
                versions[k] = int(fields.get(VERSION_FIELD, 0))
                states[k] = self.decode(k, fields)
        return states, versions, {k: raw[k] for k in records}

    @staticmethod
    def _per_slot(
        writes: Writes,
        versions: dict[str, int],
        records: set[str],
        slot_of: dict[str, int],
    ) -> dict[int, tuple[list[str], Writes]]:
        """Per slot: the state keys read there (versions to check) and the writes there."""
        per_slot: dict[int, tuple[list[str], Writes]] = {}

        def of(slot: int) -> tuple[list[str], Writes]:
            return per_slot.setdefault(slot, ([], Writes()))

        for k in versions:
            of(slot_of[k])[0].append(k)
        for k, h in writes.hashes.items():
            of(slot_of[k])[1].hashes[k] = h
        for k, v in writes.strings.items():
            if k not in records:
                of(hash_slot(k))[1].strings[k] = v
        return per_slot

    async def _check_cluster(
        self,
        client: AsyncRedisCluster,
        per_slot: dict[int, tuple[list[str], Writes]],
        versions: dict[str, int],
    ) -> bool:
        """C3a: every slot's versions still current? (The write script with no writes.)"""
        calls: list[Call] = []
        for slot, (checked, _) in per_slot.items():
            if checked:
                wkeys, blob = _write_args(Writes(), checked)
                expected = [str(versions[k]) for k in checked]
                calls.append(
                    (
                        slot,
                        (
                            "EVALSHA",
                            _WRITE_CAS_SHA,
                            len(wkeys),
                            *wkeys,
                            len(checked),
                            *expected,
                            blob,
                        ),
                    )
                )
        return _all_applied(await send_async(client, calls))

    async def _write_cluster(
        self,
        client: AsyncRedisCluster,
        per_slot: dict[int, tuple[list[str], Writes]],
        versions: dict[str, int],
        record_writes: dict[str, tuple[bytes, int]],
    ) -> bool:
        """C3b then C4; ``False`` if a slot's compare-and-set refused (nothing of it written)."""
        calls: list[Call] = []
        for slot, (checked, w) in per_slot.items():  # C3b: state and serving vectors
            if not (w.hashes or w.strings):
                continue
            wkeys, blob = _write_args(w, checked)
            expected = [str(versions[k]) for k in checked]
            n = len(wkeys)
            calls.append(
                (slot, ("EVALSHA", _WRITE_CAS_SHA, n, *wkeys, len(checked), *expected, blob))
            )
        if not _all_applied(await send_async(client, calls)):
            return False
        calls = [  # C4: dedupe records, last
            (hash_slot(k), ("SET", k, value, "EX", ttl))
            for k, (value, ttl) in record_writes.items()
        ]
        for reply in await send_async(client, calls):
            if isinstance(reply, Exception):
                raise reply
        return True

    async def _load_scripts(self) -> None:
        """Load the scripts (on a cluster: on every primary)."""
        for script in (_LOAD, _WRITE, _WRITE_CAS):
            await self.client.script_load(script)

    def _drop(self, keys: Sequence[str]) -> None:
        for k in keys:
            self.cache.pop(k, None)

    def _remember(
        self, keys: list[str], states: dict[str, S], versions: dict[str, int], writes: Writes
    ) -> None:
        """After a successful write: the cache holds the states at their new versions."""
        for k in keys:
            v = versions[k] + (1 if k in writes.hashes else 0)
            self.cache[k] = (v, states[k])
            self.cache.move_to_end(k)
        while len(self.cache) > self.cache_size:
            self.cache.popitem(last=False)

    async def _load(
        self, pipe: Any, keys: list[str], records: list[str]
    ) -> tuple[dict[str, S], dict[str, int], dict[str, bytes | None]]:
        """Every state (cached where its version still matches) and every record."""
        cached = [self.cache.get(k) for k in keys]
        args = [len(keys), *("" if c is None else str(c[0]) for c in cached)]
        all_keys = [*keys, *records]
        try:
            raw: list[Any] = await pipe.evalsha(_LOAD_SHA, len(all_keys), *all_keys, *args)
        except NoScriptError:  # Redis restarted (or never saw the scripts)
            await self._load_scripts()
            raw = await pipe.evalsha(_LOAD_SHA, len(all_keys), *all_keys, *args)
        states: dict[str, S] = {}
        versions: dict[str, int] = {}
        for k, c, r in zip(keys, cached, raw, strict=False):
            if r == 1 and c is not None:
                self.hits += 1
                versions[k], states[k] = c
            else:
                self.loads += 1
                fields = _pairs(r)
                versions[k] = int(fields.get(VERSION_FIELD, 0))
                states[k] = self.decode(k, fields)
        return states, versions, dict(zip(records, raw[len(keys) :], strict=True))


def _write_args(writes: Writes, base: Sequence[str] = ()) -> tuple[list[str], bytes]:
    """KEYS and the one (length-prefixed) argument of the write script.

    KEYS start with ``base`` (the cluster script's checked keys), then every
    other key written; the argument names keys by their 1-based index.
    """
    keys = list(base)
    index = {k: i + 1 for i, k in enumerate(keys)}

    def at(key: str) -> int:
        if key not in index:
            keys.append(key)
            index[key] = len(keys)
        return index[key]

    args: list[bytes | str | int] = [len(writes.hashes)]
    for key, (put, delete, ttl) in writes.hashes.items():
        args += [at(key), ttl, len(put), len(delete), *delete]
        for f, v in put.items():
            args += [f, v]
    args.append(len(writes.strings))
    for key, (value, ttl) in writes.strings.items():
        args += [at(key), ttl, value]
    parts: list[bytes] = []
    for a in args:
        b = a if isinstance(a, bytes) else str(a).encode()
        parts += (_LEN.pack(len(b)), b)
    return keys, b"".join(parts)


def _all_applied(replies: list[Any]) -> bool:
    """Whether no compare-and-set call refused (a reply error is raised)."""
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply
    return all(int(r) >= 0 for r in replies)


def _pairs(flat: list[bytes] | None) -> Raw:
    if not flat:
        return {}
    it = iter(flat)
    return dict(zip(it, it, strict=True))
