"""The outbox: emitted records wait in Redis, beside the state change that made them.

Exactly-once effect on ``examples.labelled`` comes from two atomic writes and
one rule:

1. A batch's state changes and its output records (a :class:`Blob`) are
   written to Redis in one transaction. The blob carries a ``seq`` (its
   order) and a ``tag``: per input partition, the offset after the last
   record the joiner had consumed when it was made.
2. A Kafka transaction produces blobs and commits the consumer offsets
   together, so "this blob is on the topic" and "the group's offsets are at
   least its tag" become true at the same instant.
3. **Rule**: a blob is produced in the first transaction whose committed
   offsets reach its tag (:func:`eligible`), and deleted from the outbox
   after that transaction commits. On restart, the blobs whose tag the
   committed offsets already reach were produced: they are dropped
   (:func:`committed_prefix`), the others are produced later.

Tags never decrease along the outbox (:func:`merge_tag` takes the maximum with
the previous blob's tag), so both predicates hold for a prefix of it: blobs
leave in ``seq`` order and a restart that re-reads from older offsets cannot
produce a blob early.

>>> t1 = merge_tag({}, {("scored", 0): 10})
>>> t2 = merge_tag(t1, {("scored", 0): 4, ("labels", 1): 7})   # after a restart
>>> t2 == {("scored", 0): 10, ("labels", 1): 7}
True
>>> blobs = [Blob(1, t1, []), Blob(2, t2, [])]
>>> [b.seq for b in eligible(blobs, {("scored", 0): 10})]
[1]
>>> [b.seq for b in committed_prefix(blobs, {("scored", 0): 12, ("labels", 1): 7})]
[1, 2]
>>> unpack_blob(pack_blob(blobs[1])) == blobs[1]
True
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import msgspec

#: (topic, partition) -> the offset after the last consumed record.
Positions = Mapping[tuple[str, int], int]


class OutRecord(msgspec.Struct, frozen=True, array_like=True):
    """A record to produce: topic, key, value and headers."""

    topic: str
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]] = []


class Blob(msgspec.Struct, frozen=True, array_like=True):
    """The output of one batch, waiting for its Kafka transaction."""

    seq: int
    tag: dict[tuple[str, int], int]
    records: list[OutRecord]


class _WireBlob(msgspec.Struct, frozen=True, array_like=True):
    seq: int
    tag: list[tuple[str, int, int]]
    records: list[OutRecord]


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(_WireBlob)


def pack_blob(blob: Blob) -> bytes:
    tag = sorted((t, p, o) for (t, p), o in blob.tag.items())
    return _encoder.encode(_WireBlob(blob.seq, tag, blob.records))


def unpack_blob(data: bytes) -> Blob:
    w = _decoder.decode(data)
    return Blob(w.seq, {(t, p): o for t, p, o in w.tag}, list(w.records))


def merge_tag(previous: Positions, positions: Positions) -> dict[tuple[str, int], int]:
    """The componentwise maximum: a blob's tag is never behind an earlier blob's."""
    out = dict(previous)
    for tp, off in positions.items():
        if off > out.get(tp, -1):
            out[tp] = off
    return out


def reached(tag: Positions, offsets: Positions) -> bool:
    """Whether ``offsets`` are at or past ``tag`` on every partition the tag names."""
    return all(offsets.get(tp, -1) >= off for tp, off in tag.items())


def eligible(blobs: Sequence[Blob], offsets: Positions) -> list[Blob]:
    """The blobs a transaction committing ``offsets`` produces: the prefix they reach."""
    out: list[Blob] = []
    for b in blobs:
        if not reached(b.tag, offsets):
            break
        out.append(b)
    return out


def committed_prefix(blobs: Sequence[Blob], committed: Positions) -> list[Blob]:
    """After a restart: the blobs already produced (the group's offsets reach their tags)."""
    return eligible(blobs, committed)
