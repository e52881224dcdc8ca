"""The joiner's Redis key layout: compact per-event fields, time buckets for the scans.

Everything of one stream lives under ``streamscore:join:{<topic prefix><stream>}:``
(the braces are a hash tag: on Redis Cluster all of it is in one slot, so the
joiner's one ``MULTI``/``EXEC`` per batch under ``WATCH`` works there too):

=======================  =========  ==================================================
key                      type       holds
=======================  =========  ==================================================
``meta``                 hash       watermark, scan cursors, gauges, outbox seq/tag
``epoch``                string     fencing counter: each joiner start increments it
``ctx``                  hash       context id -> versions, names hash, key names, decision
``ctxid``                hash       context digest -> its small id (``ctxseq`` counts them)
``rec:<shard>``          hash       event id -> packed record (``shard``: crc32 of the id)
``orph:<shard>``         hash       event id -> the latest label of an unseen event
``due:events:<b>``       string     ids whose horizon ends in bucket ``b`` (appended)
``due:orphans:<b>``      string     ids of orphans expiring in bucket ``b``
``buckets:<index>``      zset       the buckets that have a due list (score = bucket)
``outbox``               list       emitted batches not yet committed to Kafka
=======================  =========  ==================================================

Maturing a bucket reads one due list and the records it names: work in
proportion to the due events, never a scan of the state. A due list is a plain
string of length-prefixed ids (2 bytes of length, then UTF-8): about the id's
length per event, with no per-member overhead of a set.

>>> ids = ["e1", "tx-000042", "é"]
>>> unpack_ids(b"".join(pack_id(i) for i in ids)) == ids
True
>>> keys = JoinKeys("test-", "transactions", shards=8)
>>> keys.record("e1"), keys.due("events", 42)
('streamscore:join:{test-transactions}:rec:7', 'streamscore:join:{test-transactions}:due:events:42')
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from streamscore.libs.labels.machine import Index

_LEN = struct.Struct(">H")


def pack_id(event_id: str) -> bytes:
    """One id of a due list: its UTF-8 length (2 bytes, big-endian), then its bytes."""
    raw = event_id.encode()
    return _LEN.pack(len(raw)) + raw


def unpack_ids(data: bytes) -> list[str]:
    """Every id of a due list, in append order."""
    out: list[str] = []
    i, n = 0, len(data)
    while i < n:
        (length,) = _LEN.unpack_from(data, i)
        i += 2
        out.append(data[i : i + length].decode())
        i += length
    return out


@dataclass(frozen=True)
class JoinKeys:
    """Key names of one stream's joiner state (see the module doc)."""

    topic_prefix: str
    stream: str
    shards: int = 1024

    @property
    def base(self) -> str:
        return f"streamscore:join:{{{self.topic_prefix}{self.stream}}}:"

    @property
    def meta(self) -> str:
        return self.base + "meta"

    @property
    def epoch(self) -> str:
        return self.base + "epoch"

    @property
    def contexts(self) -> str:
        return self.base + "ctx"

    @property
    def context_ids(self) -> str:
        return self.base + "ctxid"

    @property
    def context_seq(self) -> str:
        return self.base + "ctxseq"

    @property
    def outbox(self) -> str:
        return self.base + "outbox"

    def shard(self, event_id: str) -> int:
        return zlib.crc32(event_id.encode()) % self.shards

    def record(self, event_id: str) -> str:
        return f"{self.base}rec:{self.shard(event_id)}"

    def orphan(self, event_id: str) -> str:
        return f"{self.base}orph:{self.shard(event_id)}"

    def due(self, index: Index, bucket: int) -> str:
        return f"{self.base}due:{index}:{bucket}"

    def buckets(self, index: Index) -> str:
        return f"{self.base}buckets:{index}"

    def pattern(self) -> str:
        """A SCAN pattern matching every key of this state (for cleanup)."""
        return self.base + "*"
