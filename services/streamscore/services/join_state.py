"""The label joiner's state in Redis: load what a batch touches, write its changes atomically.

Layout: :mod:`streamscore.libs.labels.layout`. The protocol of one batch:

1. :meth:`RedisJoinState.view` loads, in one round trip, the records of every
   id the batch names and the orphans of its scored ids.
2. The caller runs the inputs through the state machine on that
   :class:`~streamscore.libs.labels.stores.BatchView`.
3. :meth:`RedisJoinState.load_due` loads the due lists of the buckets the new
   watermark passes, and the records and orphans they name; the caller
   advances the machine.
4. :meth:`RedisJoinState.commit` writes every change, the gauges and the
   batch's outbox blob in **one** ``MULTI``/``EXEC``, under ``WATCH`` of the
   epoch key: a joiner that another one has replaced (:meth:`claim`
   increments the epoch) fails with :class:`FencedError` instead of writing.

Every key written gets a safety-net TTL (``ttl_s``, wall time, refreshed by
each write): the state of an abandoned namespace disappears by itself. It is
not how memory stays bounded (closing forgets each event ``grace`` after its
horizon); it must exceed the longest time a joiner may be stopped.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import msgspec
import redis

from streamscore.libs.labels.layout import JoinKeys, pack_id, unpack_ids
from streamscore.libs.labels.machine import Index, Meta, Targets
from streamscore.libs.labels.outbox import Blob, pack_blob, unpack_blob
from streamscore.libs.labels.records import (
    Context,
    Orphan,
    Record,
    pack_context,
    pack_orphan,
    pack_record,
    unpack_context,
    unpack_orphan,
    unpack_record,
)
from streamscore.libs.labels.stores import BatchView

_META_INTS = ("held", "pending", "orphans")
_META_OPTIONAL = {
    "watermark_us": "wm",
    "matured_through": "matured",
    "closed_through": "closed",
    "orphans_through": "orphans_through",
}
_tag_encoder = msgspec.msgpack.Encoder()
_tag_decoder = msgspec.msgpack.Decoder(list[tuple[str, int, int]])


class FencedError(RuntimeError):
    """Another joiner claimed this state (or the outbox changed under us): stop."""


def _int(raw: Any) -> int | None:
    return None if raw is None else int(raw)


class RedisJoinState:
    """One stream's joiner state in Redis (see the module doc)."""

    def __init__(self, client: redis.Redis, keys: JoinKeys, *, ttl_s: int) -> None:
        self.client = client
        self.keys = keys
        self.ttl_s = ttl_s
        self.epoch: int | None = None
        self.meta = Meta()
        #: Next outbox seq and the last blob's tag (see :mod:`~streamscore.libs.labels.outbox`).
        self.next_seq = 1
        self.last_tag: dict[tuple[str, int], int] = {}
        self.contexts: dict[int, Context] = {}
        self._ids: dict[Context, int] = {}

    # -- start -----------------------------------------------------------------------------

    def claim(self) -> int:
        """Fence every earlier joiner of this state, then load meta and contexts."""
        self.epoch = int(self.client.incr(self.keys.epoch))  # type: ignore[arg-type]
        self.client.expire(self.keys.epoch, self.ttl_s)
        self.load()
        return self.epoch

    def load(self) -> None:
        """Read meta and contexts without claiming (reports read a live joiner's clock)."""
        raw: dict[bytes, bytes] = self.client.hgetall(self.keys.meta)  # type: ignore[assignment]
        m = {k.decode(): v for k, v in raw.items()}
        meta = Meta()
        for f, short in _META_OPTIONAL.items():
            setattr(meta, f, _int(m.get(short)))
        for f in _META_INTS:
            setattr(meta, f, int(m.get(f, 0)))
        self.meta = meta
        self.next_seq = int(m.get("seq", 1))
        self.last_tag = (
            {(t, p): o for t, p, o in _tag_decoder.decode(m["tag"])} if "tag" in m else {}
        )
        ctx: dict[bytes, bytes] = self.client.hgetall(self.keys.contexts)  # type: ignore[assignment]
        self.contexts = {int(k): unpack_context(v) for k, v in ctx.items()}
        ids: dict[bytes, bytes] = self.client.hgetall(self.keys.context_ids)  # type: ignore[assignment]
        by_digest = {k.decode(): int(v) for k, v in ids.items()}
        self._ids = {
            c: by_digest[c.digest] for c in self.contexts.values() if c.digest in by_digest
        }

    # -- loading ---------------------------------------------------------------------------

    def view(self, record_ids: Iterable[str], orphan_ids: Iterable[str]) -> BatchView:
        """Step 1: a view holding the given records and orphans (``None`` where absent)."""
        v = BatchView(_copy_meta(self.meta), records={}, orphans={})
        recs, orphs = self._fetch(set(record_ids), set(orphan_ids))
        v.load_records(recs)
        v.load_orphans(orphs)
        return v

    def _fetch(
        self, record_ids: set[str], orphan_ids: set[str]
    ) -> tuple[dict[str, Record | None], dict[str, Orphan | None]]:
        by_key: dict[tuple[bool, str], list[str]] = defaultdict(list)
        for i in record_ids:
            by_key[(True, self.keys.record(i))].append(i)
        for i in orphan_ids:
            by_key[(False, self.keys.orphan(i))].append(i)
        if not by_key:
            return {}, {}
        pipe = self.client.pipeline(transaction=False)
        order = list(by_key.items())
        for (_is_rec, key), ids in order:
            pipe.hmget(key, ids)
        replies = pipe.execute()
        recs: dict[str, Record | None] = {}
        orphs: dict[str, Orphan | None] = {}
        for ((is_rec, _key), ids), values in zip(order, replies, strict=True):
            for i, raw in zip(ids, values, strict=True):
                if is_rec:
                    recs[i] = None if raw is None else unpack_record(raw)
                else:
                    orphs[i] = None if raw is None else unpack_orphan(raw)
        return recs, orphs

    def load_due(self, view: BatchView, targets: Targets) -> None:
        """Step 3: due lists of the buckets ``targets`` names, and what they name."""
        candidates: list[tuple[Index, tuple[int | None, int] | None]] = [
            ("events", targets.mature),
            ("events", targets.close),
            ("orphans", targets.orphans),
        ]
        spans = [(index, span) for index, span in candidates if span is not None]
        if not spans:
            return
        pipe = self.client.pipeline(transaction=False)
        for index, (after, through) in spans:
            low = "-inf" if after is None else f"({after}"
            pipe.zrangebyscore(self.keys.buckets(index), low, through)
        bucket_lists: list[list[bytes]] = pipe.execute()
        wanted = [
            (index, span, [int(b) for b in buckets])
            for (index, span), buckets in zip(spans, bucket_lists, strict=True)
        ]
        pipe = self.client.pipeline(transaction=False)
        for index, _span, buckets in wanted:
            for b in buckets:
                pipe.get(self.keys.due(index, b))
        raw_lists = iter(pipe.execute())
        need_records: set[str] = set()
        need_orphans: set[str] = set()
        for index, span, buckets in wanted:
            found = {b: unpack_ids(next(raw_lists) or b"") for b in buckets}
            view.load_due(index, span, found)
            for ids in found.values():
                (need_records if index == "events" else need_orphans).update(ids)
        recs, orphs = self._fetch(need_records, need_orphans)
        view.load_records(recs)
        view.load_orphans(orphs)

    # -- writing ---------------------------------------------------------------------------

    def commit(self, view: BatchView, blob: Blob | None) -> None:
        """Step 4: the view's changes, the gauges and the blob, atomically and fenced."""
        w, keys, ttl = view.writes, self.keys, self.ttl_s
        # The context table is refreshed with every batch: records name its ids.
        touched: set[str] = {keys.meta, keys.contexts, keys.context_ids, keys.context_seq}
        with self.client.pipeline(transaction=True) as pipe:
            self._watch_epoch(pipe)
            pipe.multi()
            for i, rec in w.records.items():
                k = keys.record(i)
                touched.add(k)
                if rec is None:
                    pipe.hdel(k, i)
                else:
                    pipe.hset(k, mapping={i: pack_record(rec)})
            for i, orphan in w.orphans.items():
                k = keys.orphan(i)
                touched.add(k)
                if orphan is None:
                    pipe.hdel(k, i)
                else:
                    pipe.hset(k, mapping={i: pack_orphan(orphan)})
            for index, added in w.due_added.items():
                for b, ids in added.items():
                    if not ids:
                        continue
                    pipe.append(keys.due(index, b), b"".join(pack_id(i) for i in ids))
                    pipe.zadd(keys.buckets(index), {str(b): b})
                    touched.update((keys.due(index, b), keys.buckets(index)))
            for index, dropped in w.due_dropped.items():
                for b in dropped:
                    pipe.delete(keys.due(index, b))
                    pipe.zrem(keys.buckets(index), str(b))
            fields = self._meta_fields(view.meta)
            if blob is not None:
                touched.add(keys.outbox)
                pipe.rpush(keys.outbox, pack_blob(blob))
                fields["seq"] = blob.seq + 1
                fields["tag"] = _pack_tag(blob.tag)
            pipe.hset(keys.meta, mapping=fields)
            for k in touched:
                pipe.expire(k, ttl)
            self._execute(pipe)
        self.meta = _copy_meta(view.meta)
        if blob is not None:
            self.next_seq = blob.seq + 1
            self.last_tag = dict(blob.tag)

    def intern(self, ctx: Context) -> int:
        """The small id of a context, allocated on first use (before any record names it).

        Contexts change only with a model, policy or feature declaration, so this
        costs a round trip a few times per deployment. Allocation is idempotent:
        the digest's id is set once (``HSETNX``); an id lost to a crash is a gap.
        """
        cached = self._ids.get(ctx)
        if cached is not None:
            return cached
        digest = ctx.digest
        found = self.client.hget(self.keys.context_ids, digest)
        if found is None:
            candidate = int(self.client.incr(self.keys.context_seq)) - 1  # type: ignore[arg-type]
            pipe = self.client.pipeline(transaction=True)
            pipe.hset(self.keys.contexts, mapping={str(candidate): pack_context(ctx)})
            pipe.hsetnx(self.keys.context_ids, digest, str(candidate))
            pipe.hget(self.keys.context_ids, digest)
            for k in (self.keys.contexts, self.keys.context_ids, self.keys.context_seq):
                pipe.expire(k, self.ttl_s)
            found = pipe.execute()[2]
        ctx_id = int(found)  # type: ignore[arg-type]
        self.contexts[ctx_id] = ctx
        self._ids[ctx] = ctx_id
        return ctx_id

    def outbox(self) -> list[Blob]:
        """Every blob waiting in the outbox, oldest first."""
        raw: list[bytes] = self.client.lrange(self.keys.outbox, 0, -1)  # type: ignore[assignment]
        return [unpack_blob(r) for r in raw]

    def drop_outbox(self, blobs: list[Blob]) -> None:
        """Remove ``blobs`` (a prefix of the outbox) after their transaction committed."""
        if not blobs:
            return
        with self.client.pipeline(transaction=True) as pipe:
            self._watch_epoch(pipe)
            head = pipe.lindex(self.keys.outbox, 0)
            if head is None or unpack_blob(head).seq != blobs[0].seq:  # type: ignore[arg-type]
                raise FencedError("the outbox no longer starts with the blobs just produced")
            pipe.multi()
            pipe.ltrim(self.keys.outbox, len(blobs), -1)
            self._execute(pipe)

    def _watch_epoch(self, pipe: Any) -> None:
        pipe.watch(self.keys.epoch)
        current = pipe.get(self.keys.epoch)
        if self.epoch is None or current is None or int(current) != self.epoch:
            raise FencedError(f"joiner epoch {self.epoch} replaced by {current!r}")

    @staticmethod
    def _execute(pipe: Any) -> None:
        try:
            pipe.execute()
        except redis.WatchError as exc:
            raise FencedError("another joiner claimed the state during a write") from exc

    @staticmethod
    def _meta_fields(meta: Meta) -> dict[str, int | str | bytes]:
        fields: dict[str, int | str | bytes] = {f: getattr(meta, f) for f in _META_INTS}
        for f, short in _META_OPTIONAL.items():
            value = getattr(meta, f)
            if value is not None:
                fields[short] = value
        return fields

    def delete_all(self) -> int:
        """Remove every key of this state (tests, memory probes); returns how many."""
        n = 0
        for key in self.client.scan_iter(match=self.keys.pattern(), count=1000):
            n += int(self.client.delete(key))  # type: ignore[arg-type]
        return n


def _pack_tag(tag: dict[tuple[str, int], int]) -> bytes:
    return _tag_encoder.encode(sorted((t, p, o) for (t, p), o in tag.items()))


def _copy_meta(m: Meta) -> Meta:
    return Meta(**vars(m))
