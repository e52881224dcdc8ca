"""Online feature reads: the serving vectors of a batch of entity rows in one Redis round trip.

The feature processors keep one serving vector per entity and group under
``ss:fv:{<group>:<id>}`` (:mod:`streamscore.libs.features.online_layout`).
:class:`OnlineFeatureClient` (redis-py) and :class:`AsyncOnlineFeatureClient`
(``redis.asyncio``, for FastAPI) read them for a batch of rows and return an
:class:`OnlineRead`: a float32 matrix (rows × the requested groups' features,
in group declaration order, NaN for a missing value), and per group and row a
status and an age. Both clients share the pure decoding below; only the fetch
differs.

How one read works:

1. Build every key of every requested group (group-major: all rows of the
   first group, then the second, ...). A row without an entity id for a group
   sends no key for it and reads ``NOT_FOUND``.
2. Fetch them with ONE ``MGET``: one network round trip whatever the batch
   size. (On Redis Cluster the keys of different entities hash to different
   slots and a single ``MGET`` fails with ``CROSSSLOT``: the client is a
   ``RedisCluster`` there, and the fetch sends one read script per node, the
   nodes in parallel, falling back to one ``MGET`` per slot for a node that
   refuses it (:func:`.cluster_calls.get_many`): still one round trip.
   :meth:`OnlineFeatureClient._fetch` is the only place that differs.)
3. Decode each group at once with numpy: the blobs of the expected length are
   joined into one buffer; their header bytes are compared in one operation
   with those the layout's own :func:`pack` writes for the group (format
   version, declaration hash, value count), and the buffer is viewed through a
   structured dtype (header fields, then the float32 values) to copy the
   values into the matrix and read the event times. No per-row Python work
   beyond building the keys and joining the bytes.
4. A blob that fails that check is handed to
   :func:`~streamscore.libs.features.online_layout.unpack_array`, the layout's
   own decoder, which stays the authority: if it refuses the blob (truncated,
   other format version, written under another declaration), the row's status
   is ``ERROR``, its values NaN, and the error is recorded in
   :attr:`OnlineRead.errors` and counted; one bad key never fails the batch.
5. Statuses: ``NOT_FOUND`` (no key), ``ERROR`` (undecodable), otherwise
   ``PRESENT``, or ``OUTSIDE_MAX_AGE`` when the vector's event time is more
   than the group's ``max_age_s`` before now (as Feast's TTL). The values of a
   stale vector are still returned; the status says they are stale. The age is
   ``now - event time`` in seconds (negative if the producer's clock is ahead)
   and ``None`` when there is no decodable vector.

A Redis failure (timeout, connection refused) raises by default; with
``store_errors_as_status=True`` it becomes data instead: every group of every
row reads ``ERROR`` (which the decision policy routes to its degraded path)
and :attr:`OnlineRead.store_error` says why.

>>> from streamscore.libs.features.definitions import groups
>>> from streamscore.libs.features.online_layout import pack
>>> customer, terminal = groups("transactions")
>>> blob = pack(customer, [2.0, None] + [1.0] * 7, event_time_us=990_000_000, written_us=0)
>>> r = decode_read([customer, terminal], 2, [blob, None, None, b"junk"], now_s=1000.0)
>>> r.row(0)["customer_nb_tx_1d"], r.row(0)["customer_avg_amount_1d"]
(2.0, None)
>>> r.row_statuses(0)
{'customer_tx': 'PRESENT', 'terminal_risk': 'NOT_FOUND'}
>>> r.row_freshness(0)
{'customer_tx': 10.0, 'terminal_risk': None}
>>> r.row_statuses(1)["terminal_risk"], r.error_count
('ERROR', 1)
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, cast

import numpy as np
import numpy.typing as npt
import redis
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.cluster import RedisCluster
from redis.exceptions import RedisError

from streamscore.libs.contracts.decisions import FeatureStatus
from streamscore.libs.features.online_layout import (
    HEADER_BYTES,
    LayoutError,
    pack,
    unpack_array,
    vector_key,
)
from streamscore.libs.features.spec import FeatureGroup
from streamscore.services.cluster_calls import get_many, get_many_async

#: Status codes of :attr:`OnlineRead.status_codes`, indexing this tuple.
STATUSES: Final[tuple[FeatureStatus, ...]] = ("PRESENT", "NOT_FOUND", "OUTSIDE_MAX_AGE", "ERROR")
PRESENT, NOT_FOUND, OUTSIDE_MAX_AGE, ERROR = range(4)  # PRESENT must stay 0
_STATUS_OBJECTS = np.array(STATUSES, dtype=object)

#: The serving vector's header (online_layout's ``<B8sqqH``) as numpy fields.
_HEADER = np.dtype(
    [("version", "u1"), ("hash", "V8"), ("event_us", "<i8"), ("written_us", "<i8"), ("n", "<u2")]
)
if _HEADER.itemsize != HEADER_BYTES:  # pragma: no cover - layout drift
    msg = "online_layout's vector header changed: update _HEADER in online_features"
    raise ImportError(msg)


def _times_offset() -> int:
    fields = _HEADER.fields
    assert fields is not None
    return int(fields["event_us"][1])


#: Header bytes that are the same in every well-formed vector of a group: all but
#: the two int64 times (event and write time), which are adjacent.
_CHECKED = np.array(
    [i for i in range(HEADER_BYTES) if not 0 <= i - _times_offset() < 16], dtype=np.intp
)

_PROBE = "\x00probe\x00"


@dataclass(frozen=True)
class ReadError:
    """One serving vector that could not be decoded (its row reads ``ERROR``)."""

    group: str
    entity_id: str
    reason: str


@dataclass(frozen=True)
class _GroupPlan:
    """What decoding one group needs, computed once per client."""

    group: FeatureGroup
    start: int  # first column of the group in the matrix
    stop: int
    record: np.dtype[Any]  # header + values: one record per stored vector
    size: int  # bytes of a well-formed vector
    template: npt.NDArray[np.uint8]  # the _CHECKED header bytes it must have
    key_prefix: str
    key_suffix: str

    @classmethod
    def build(cls, group: FeatureGroup, start: int) -> _GroupPlan:
        n = len(group.features)
        record = np.dtype([*(_HEADER.descr), ("values", "<f4", (n,))])
        # The expected header comes from the layout's own writer (version, hash, count).
        blank = pack(group, [None] * n, event_time_us=0, written_us=0)
        template = np.frombuffer(blank, dtype=np.uint8)[_CHECKED].copy()
        # Keys are ``prefix + id + suffix``, split from the layout's own key of a
        # probe id: cheaper than calling vector_key per row, and never out of sync.
        prefix, _, suffix = vector_key(group, _PROBE).partition(_PROBE)
        assert vector_key(group, "x") == f"{prefix}x{suffix}"
        assert record.itemsize == len(blank)
        return cls(group, start, start + n, record, record.itemsize, template, prefix, suffix)

    def check(self, buf: bytes, n: int) -> npt.NDArray[np.bool_]:
        """Which of ``n`` joined well-sized vectors carry this group's header."""
        raw = np.frombuffer(buf, dtype=np.uint8).reshape(n, self.size)
        ok: npt.NDArray[np.bool_] = (raw[:, _CHECKED] == self.template).all(axis=1)
        return ok


@dataclass(frozen=True)
class _ReadPlan:
    """The groups of one client, in order, and the matrix columns they fill."""

    groups: tuple[_GroupPlan, ...]
    feature_names: tuple[str, ...]
    group_names: tuple[str, ...]

    @property
    def n_features(self) -> int:
        return len(self.feature_names)


def _plan(groups: Sequence[FeatureGroup]) -> _ReadPlan:
    if not groups:
        raise ValueError("no feature groups requested")
    names = [g.name for g in groups]
    if len(set(names)) != len(names):
        raise ValueError(f"feature groups requested twice: {names}")
    plans, start = [], 0
    for g in groups:
        plans.append(_GroupPlan.build(g, start))
        start += len(g.features)
    features = tuple(f for g in groups for f in g.feature_names)
    return _ReadPlan(tuple(plans), features, tuple(names))


@dataclass(frozen=True)
class OnlineRead:
    """The features of a batch of rows as read from the online store.

    ``values[i]`` is row ``i`` in :attr:`feature_names` order (NaN: missing).
    ``status_codes[group][i]`` indexes :data:`STATUSES`; ``ages[group][i]``
    is the age of the vector in seconds (NaN: no vector). The list and dict
    views (:attr:`statuses`, :attr:`ages_s`, :meth:`row`, ...) are built on demand.
    """

    values: npt.NDArray[np.float32]
    feature_names: tuple[str, ...]
    group_names: tuple[str, ...]
    status_codes: dict[str, npt.NDArray[np.int8]]
    ages: dict[str, npt.NDArray[np.float64]]
    entity_ids: dict[str, list[str | None]]
    errors: tuple[ReadError, ...] = ()
    #: Why the store could not be read at all (every status is then ``ERROR``).
    store_error: str | None = None

    @property
    def n_rows(self) -> int:
        return int(self.values.shape[0])

    @property
    def error_count(self) -> int:
        """Rows × groups that read ``ERROR`` (undecodable vectors, or the store failing)."""
        if self.store_error is not None:
            return self.n_rows * len(self.group_names)
        return len(self.errors)  # one ReadError per undecodable vector

    @property
    def statuses(self) -> dict[str, list[FeatureStatus]]:
        """Per group, the status of each row."""
        return {g: _STATUS_OBJECTS[c].tolist() for g, c in self.status_codes.items()}

    @property
    def ages_s(self) -> dict[str, list[float | None]]:
        """Per group, the age in seconds of each row's vector (``None``: not found)."""
        return {g: _none_for_nan(a.tolist()) for g, a in self.ages.items()}

    def row(self, i: int) -> dict[str, float | None]:
        """Row ``i`` as ``{feature: value}``; a missing value is ``None``, never 0."""
        return dict(zip(self.feature_names, _none_for_nan(self.values[i].tolist()), strict=True))

    def row_statuses(self, i: int) -> dict[str, FeatureStatus]:
        """``{group: status}`` of row ``i`` (a decision's ``feature_statuses``)."""
        return {g: STATUSES[int(c[i])] for g, c in self.status_codes.items()}

    def row_freshness(self, i: int) -> dict[str, float | None]:
        """``{group: age in seconds or None}`` of row ``i`` (a decision's ``feature_freshness``)."""
        ages = {g: float(a[i]) for g, a in self.ages.items()}
        return {g: None if math.isnan(age) else age for g, age in ages.items()}


def _none_for_nan(xs: list[float]) -> list[float | None]:
    return [None if math.isnan(x) else x for x in xs]


def _decode_group(
    plan: _GroupPlan,
    blobs: Sequence[bytes | None],
    ids: Sequence[str | None],
    *,
    now_us: float,
    out: npt.NDArray[np.float32],
    errors: list[ReadError],
) -> tuple[npt.NDArray[np.int8], npt.NDArray[np.float64]]:
    """Fill ``out[:, plan.start:plan.stop]``; return the group's status codes and ages."""
    n_rows = len(blobs)
    cols = slice(plan.start, plan.stop)
    max_age_us = plan.group.max_age_s * 1e6
    filled = [b"" if b is None else b for b in blobs]
    lengths = list(map(len, filled))
    if lengths.count(plan.size) == n_rows:
        # Step 3, the common case: one well-sized vector per row, a few numpy calls.
        buf = b"".join(filled)
        if plan.check(buf, n_rows).all():
            rec = np.frombuffer(buf, dtype=plan.record)
            out[:, cols] = rec["values"]
            age_us = now_us - rec["event_us"]
            codes = (age_us > max_age_us).astype(np.int8)
            codes *= OUTSIDE_MAX_AGE  # PRESENT is 0
            return codes, age_us / 1e6
    # Step 3 with gaps: the well-sized blobs joined (a not-found or odd row adds b"").
    lens = np.array(lengths, dtype=np.int64)
    sized = lens == plan.size
    codes = np.full(n_rows, NOT_FOUND, dtype=np.int8)
    event_us = np.zeros(n_rows, dtype=np.int64)
    odd = np.flatnonzero(~sized & (lens != 0)).tolist()
    odd += [i for i in np.flatnonzero(lens == 0).tolist() if blobs[i] is not None]
    rows = np.flatnonzero(sized)
    if len(rows):
        buf = b"".join(b if s else b"" for b, s in zip(filled, sized.tolist(), strict=True))
        ok = plan.check(buf, len(rows))
        rec = np.frombuffer(buf, dtype=plan.record)
        good = rows[ok]
        out[good, cols] = rec["values"][ok]
        event_us[good] = rec["event_us"][ok]
        codes[good] = PRESENT
        odd += rows[~ok].tolist()
    for i in sorted(odd):
        # Step 4: the layout's decoder decides, and says why it refuses.
        try:
            arr, ev, _written = unpack_array(plan.group, filled[i])
        except LayoutError as e:
            codes[i] = ERROR
            errors.append(ReadError(plan.group.name, str(ids[i]), str(e)))
            continue
        out[i, cols] = arr
        event_us[i] = ev
        codes[i] = PRESENT
    # Step 5: ages and staleness of the decoded vectors.
    found = codes == PRESENT
    age_us = np.where(found, now_us - event_us, np.nan)
    codes[found & (age_us > max_age_us)] = OUTSIDE_MAX_AGE
    return codes, age_us / 1e6


def _decode(
    plan: _ReadPlan,
    ids: dict[str, list[str | None]],
    blobs: Sequence[bytes | None],
    now_s: float,
    store_error: str | None = None,
) -> OnlineRead:
    """Decode group-major ``blobs`` (``None``: not found) of the rows named by ``ids``."""
    n_rows = len(ids[plan.group_names[0]])
    out = np.full((n_rows, plan.n_features), np.nan, dtype=np.float32)
    codes: dict[str, npt.NDArray[np.int8]] = {}
    ages: dict[str, npt.NDArray[np.float64]] = {}
    errors: list[ReadError] = []
    now_us = now_s * 1e6
    for k, gp in enumerate(plan.groups):
        name = gp.group.name
        if store_error is not None:
            codes[name] = np.full(n_rows, ERROR, dtype=np.int8)
            ages[name] = np.full(n_rows, np.nan)
            continue
        part = blobs[k * n_rows : (k + 1) * n_rows]
        codes[name], ages[name] = _decode_group(
            gp, part, ids[name], now_us=now_us, out=out, errors=errors
        )
    return OnlineRead(
        values=out,
        feature_names=plan.feature_names,
        group_names=plan.group_names,
        status_codes=codes,
        ages=ages,
        entity_ids=ids,
        errors=tuple(errors),
        store_error=store_error,
    )


def decode_read(
    groups: Sequence[FeatureGroup],
    n_rows: int,
    blobs: Sequence[bytes | None],
    *,
    now_s: float,
    entity_ids: Mapping[str, Sequence[str | None]] | None = None,
) -> OnlineRead:
    """Decode fetched serving vectors (group-major: ``n_rows`` blobs per group, in order).

    The pure half of a read, without Redis: what both clients call after
    their fetch. ``entity_ids`` only labels errors.
    """
    plan = _plan(groups)
    if len(blobs) != n_rows * len(plan.groups):
        raise ValueError(f"{len(blobs)} blobs for {n_rows} rows × {len(plan.groups)} groups")
    ids: dict[str, list[str | None]] = {
        g: list(entity_ids[g]) if entity_ids else [f"row{i}" for i in range(n_rows)]
        for g in plan.group_names
    }
    return _decode(plan, ids, blobs, now_s)


class _Reader:
    """The Redis-independent half of both clients: keys, decoding, counters."""

    def __init__(
        self,
        client: redis.Redis | aioredis.Redis,
        groups: Sequence[FeatureGroup],
        *,
        clock: Callable[[], float] = time.time,
        store_errors_as_status: bool = False,
    ) -> None:
        if client.get_encoder().decode_responses:
            raise ValueError("the Redis client must return bytes: decode_responses=False")
        self._plan = _plan(groups)
        self._join_keys = [(p.group.name, p.group.entity.join_key) for p in self._plan.groups]
        self.groups = tuple(groups)
        self.feature_names = self._plan.feature_names
        self.clock = clock
        self.store_errors_as_status = store_errors_as_status
        #: Reads served, group vectors that read ``ERROR``, and reads the store failed.
        self.reads = 0
        self.errors = 0
        self.store_errors = 0

    def _ids(self, entity_ids: Mapping[str, Sequence[str | None]]) -> dict[str, list[str | None]]:
        names = self._plan.group_names
        if set(entity_ids) != set(names):
            raise ValueError(f"entity ids given for {sorted(entity_ids)}, expected {list(names)}")
        ids = {g: list(entity_ids[g]) for g in names}
        if len({len(v) for v in ids.values()}) != 1:
            counts = {g: len(v) for g, v in ids.items()}
            raise ValueError(f"groups have different row counts: {counts}")
        return ids

    def _rows(self, rows: Sequence[Mapping[str, str]]) -> dict[str, list[str | None]]:
        return {g: [r.get(key) for r in rows] for g, key in self._join_keys}

    def _keys(self, ids: dict[str, list[str | None]]) -> tuple[list[str], list[int] | None]:
        """Step 1: the keys to fetch and, when some ids are ``None``, the blob slot of each."""
        keys: list[str] = []
        for p in self._plan.groups:
            pre, suf = p.key_prefix, p.key_suffix
            keys += [pre + i + suf for i in ids[p.group.name] if i is not None]
        n_rows = len(ids[self._plan.group_names[0]])
        if len(keys) == n_rows * len(self._plan.groups):
            return keys, None
        slots = [
            k * n_rows + i
            for k, g in enumerate(self._plan.group_names)
            for i, e in enumerate(ids[g])
            if e is not None
        ]
        return keys, slots

    def _finish(
        self,
        ids: dict[str, list[str | None]],
        fetched: list[bytes | None] | None,
        slots: list[int] | None,
        now_s: float | None,
        store_error: str | None = None,
    ) -> OnlineRead:
        """Steps 3 to 5 on what the fetch returned (``None``: the fetch failed)."""
        n_blobs = len(ids[self._plan.group_names[0]]) * len(self._plan.groups)
        blobs: list[bytes | None]
        if fetched is None:
            blobs = [None] * n_blobs
        elif slots is None:
            blobs = fetched
        else:
            blobs = [None] * n_blobs
            for slot, blob in zip(slots, fetched, strict=True):
                blobs[slot] = blob
        now = self.clock() if now_s is None else now_s
        result = _decode(self._plan, ids, blobs, now, store_error)
        self.reads += 1
        self.errors += result.error_count
        self.store_errors += store_error is not None
        return result


class OnlineFeatureClient(_Reader):
    """Reads a batch's serving vectors of ``groups`` with one ``MGET`` (redis-py).

    ``client`` must return bytes (``decode_responses=False``, as
    :func:`streamscore.services.clients.make_redis` builds it). ``clock``
    gives "now" in seconds for ages; ``read(..., now_s=...)`` overrides it
    (e.g. the event time, so a replay sees the same staleness).
    """

    def __init__(
        self,
        client: redis.Redis,
        groups: Sequence[FeatureGroup],
        *,
        clock: Callable[[], float] = time.time,
        store_errors_as_status: bool = False,
    ) -> None:
        super().__init__(client, groups, clock=clock, store_errors_as_status=store_errors_as_status)
        self._redis = client

    def read(
        self, entity_ids: Mapping[str, Sequence[str | None]], *, now_s: float | None = None
    ) -> OnlineRead:
        """Features of the rows given as ``{group name: [entity id of each row]}``."""
        ids = self._ids(entity_ids)
        keys, slots = self._keys(ids)
        try:
            fetched = self._fetch(keys)
        except RedisError as e:
            if not self.store_errors_as_status:
                raise
            return self._finish(ids, None, None, now_s, f"{type(e).__name__}: {e}")
        return self._finish(ids, fetched, slots, now_s)

    def read_rows(
        self, rows: Sequence[Mapping[str, str]], *, now_s: float | None = None
    ) -> OnlineRead:
        """Features of rows given like Feast's ``entity_rows``: ``[{join key: id}, ...]``."""
        return self.read(self._rows(rows), now_s=now_s)

    def _fetch(self, keys: list[str]) -> list[bytes | None]:
        """Step 2: one ``MGET``; on Redis Cluster one read per node, in parallel."""
        if not keys:
            return []  # MGET needs at least one key
        if isinstance(self._redis, RedisCluster):
            return get_many(self._redis, keys)
        return cast(list[bytes | None], self._redis.mget(keys))


class AsyncOnlineFeatureClient(_Reader):
    """The ``redis.asyncio`` twin of :class:`OnlineFeatureClient` (same decoding, same result)."""

    def __init__(
        self,
        client: aioredis.Redis,
        groups: Sequence[FeatureGroup],
        *,
        clock: Callable[[], float] = time.time,
        store_errors_as_status: bool = False,
    ) -> None:
        super().__init__(client, groups, clock=clock, store_errors_as_status=store_errors_as_status)
        self._redis = client

    async def read(
        self, entity_ids: Mapping[str, Sequence[str | None]], *, now_s: float | None = None
    ) -> OnlineRead:
        """Features of the rows given as ``{group name: [entity id of each row]}``."""
        ids = self._ids(entity_ids)
        keys, slots = self._keys(ids)
        try:
            fetched = await self._fetch(keys)
        except RedisError as e:
            if not self.store_errors_as_status:
                raise
            return self._finish(ids, None, None, now_s, f"{type(e).__name__}: {e}")
        return self._finish(ids, fetched, slots, now_s)

    async def read_rows(
        self, rows: Sequence[Mapping[str, str]], *, now_s: float | None = None
    ) -> OnlineRead:
        """Features of rows given like Feast's ``entity_rows``: ``[{join key: id}, ...]``."""
        return await self.read(self._rows(rows), now_s=now_s)

    async def _fetch(self, keys: list[str]) -> list[bytes | None]:
        """Step 2: one ``MGET``; on Redis Cluster one read per node, in parallel."""
        if not keys:
            return []
        if isinstance(self._redis, AsyncRedisCluster):
            return await get_many_async(self._redis, keys)
        return cast(list[bytes | None], await self._redis.mget(keys))
