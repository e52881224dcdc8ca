"""One micro-batch of a feature processor: decode, compute against Redis state, emit records.

Independent of the Kafka runtime (the faust agent in :mod:`.feature_agent`
drives it): :meth:`FeatureProcessor.process` takes raw input messages of a
stream's event topic and label topic and returns the records to produce, in
input order. For each message, in order:

1. Decode against its topic's contract; a refusal becomes a DLQ record
   (reason, field, origin) and the batch goes on.
2. A label is recorded in the ledgers of the entities it is about (terminal
   risk for chargebacks); the ledger counts it only from its arrival time on.
3. An event whose dedupe record exists (already processed: a redelivery, or a
   producer's duplicate) re-emits that exact record. Otherwise its features
   are computed (:func:`~streamscore.libs.features.compute.apply_event`), the
   feature-enriched record is built, and it becomes the dedupe record. An
   event with a non-finite or out-of-range input, or an implausible event time
   (:mod:`~streamscore.libs.features.event_time`), goes to the DLQ (reason
   ``semantic``).
4. The batch's writes (state changes, serving vectors of entities whose
   newest event this is, dedupe records) land in one Redis transaction
   (:mod:`.feature_state`), recomputed from fresh state if another process
   touched the same entities meanwhile.

Within a batch, messages are taken in event-time order across partitions:
each partition's own order is kept and the partition whose next message is
earliest goes first (labels before events at the same time), as Kafka Streams
picks records. An entity that is not the topic's key (a terminal, an IP)
receives events from several partitions; this keeps its windows close to
event-time order when partitions are consumed unevenly (a backlog, a replay).

Nothing here commits offsets: the caller produces the returned records,
waits for the broker's acknowledgement, and only then lets the offsets go.
"""

from __future__ import annotations

import heapq
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from streamscore.libs.contracts.base import Event
from streamscore.libs.contracts.codec import decode, encode
from streamscore.libs.contracts.dlq import build_dlq_headers
from streamscore.libs.contracts.errors import ContractError
from streamscore.libs.contracts.registry import contract_for
from streamscore.libs.features.compute import (
    FeatureInputError,
    apply_event,
    apply_label,
    entity_id,
    label_groups,
)
from streamscore.libs.features.definitions import GROUPS, feature_schema_hash, groups
from streamscore.libs.features.event_time import EventTimeBounds
from streamscore.libs.features.group_state import GroupState
from streamscore.libs.features.online_layout import (
    group_of_key,
    output_key,
    pack,
    state_key,
    vector_key,
)
from streamscore.libs.features.plan import plan_for
from streamscore.libs.features.spec import FeatureGroup
from streamscore.libs.topics import STREAMS, dlq_topic
from streamscore.libs.windows.engine import Outcome
from streamscore.libs.windows.timebase import to_us
from streamscore.services.feature_state import FeatureStateStore, Raw, Writes

#: How long a processed event's record is kept for deduplication (seconds).
DEFAULT_RECORD_TTL_S = 24 * 3600


@dataclass(frozen=True)
class InMessage:
    """A raw input message and where it came from."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    timestamp_ms: int | None


@dataclass(frozen=True)
class OutRecord:
    """A record to produce."""

    topic: str
    key: bytes | None
    value: bytes
    headers: Sequence[tuple[str, bytes]] = ()
    #: The input's Kafka timestamp, for latency metrics (feature records only).
    source_timestamp_ms: int | None = None


@dataclass
class BatchStats:
    """What one batch did (applied to metrics once its writes landed)."""

    events: Counter[str] = field(default_factory=Counter)
    labels: Counter[str] = field(default_factory=Counter)
    late: Counter[str] = field(default_factory=Counter)
    dead_letters: Counter[str] = field(default_factory=Counter)


@dataclass(frozen=True)
class _Item:
    msg: InMessage
    decoded: Any | None  # a contract message, or None if refused
    error: ContractError | None


_PLANS = {g.name: plan_for(g) for g in GROUPS}


def decode_state(key: str, raw: Raw) -> GroupState:
    """A state hash (``HGETALL``) as the group state it holds."""
    return GroupState.from_fields(_PLANS[group_of_key(key)], raw)


class FeatureProcessor:
    """Feature computation for one stream against the Redis state."""

    def __init__(
        self,
        stream: str,
        store: FeatureStateStore[GroupState],
        *,
        service: str = "features",
        topic_prefix: str = "",
        max_bytes: int = 1024 * 1024,
        record_ttl_s: int = DEFAULT_RECORD_TTL_S,
        clock: Callable[[], float] = time.time,
        time_bounds: EventTimeBounds | None = None,
    ) -> None:
        self.stream = stream
        self.store = store
        self.service = service
        self.prefix = topic_prefix
        self.max_bytes = max_bytes
        self.record_ttl_s = record_ttl_s
        self.clock = clock
        self.time_bounds = time_bounds or EventTimeBounds()
        spec = STREAMS[stream]
        self.event_topic = topic_prefix + spec.input_topic
        self.label_topic = topic_prefix + spec.label_topic
        self.feature_topic = topic_prefix + spec.feature_topic
        self.event_contract = contract_for(spec.input_topic)
        self.label_contract = contract_for(spec.label_topic)
        self.feature_type = contract_for(spec.feature_topic).type
        self.groups = groups(stream)
        self.label_groups = label_groups(stream)
        self.schema_hash = feature_schema_hash(stream)

    @property
    def topics(self) -> tuple[str, ...]:
        """The input topics: events, and labels if a feature of the stream derives from them."""
        return (self.event_topic, self.label_topic) if self.label_groups else (self.event_topic,)

    # -- step 1 ----------------------------------------------------------
    def _decode(self, msg: InMessage) -> _Item:
        contract = self.label_contract if msg.topic == self.label_topic else self.event_contract
        try:
            return _Item(msg, decode(contract.type, msg.value, max_bytes=self.max_bytes), None)
        except ContractError as err:
            return _Item(msg, None, err)

    def _dead_letter(self, msg: InMessage, error: ContractError) -> OutRecord:
        headers = build_dlq_headers(
            error,
            source_topic=msg.topic,
            source_partition=msg.partition,
            source_offset=msg.offset,
            source_timestamp_ms=msg.timestamp_ms,
            service=self.service,
            failed_at=datetime.now(tz=UTC),
        )
        return OutRecord(dlq_topic(msg.topic), msg.key, msg.value, headers)

    # -- keys --------------------------------------------------------------
    def _event_keys(self, event: Event) -> list[tuple[FeatureGroup, str]]:
        out = []
        for g in self.groups:
            eid = entity_id(g, event)
            if eid is None:  # join keys are required fields: cannot happen for a decoded event
                raise ValueError(f"{self.stream} event without {g.entity.join_key}")
            out.append((g, eid))
        return out

    def _label_keys(self, label: Any) -> list[tuple[FeatureGroup, str]]:
        return [(g, eid) for g in self.label_groups if (eid := entity_id(g, label)) is not None]

    # -- steps 2-4 -------------------------------------------------------
    def _in_time_order(self, items: list[_Item]) -> list[_Item]:
        """Refusals first, then a merge of the partitions by event time (order within kept)."""
        refused = [it for it in items if it.decoded is None]
        per_partition: dict[tuple[str, int], list[tuple[int, int, int, _Item]]] = {}
        for seq, it in enumerate(items):
            if it.decoded is not None:
                rank = 0 if it.msg.topic == self.label_topic else 1
                key = (it.msg.topic, it.msg.partition)
                t = to_us(it.decoded.event_time)
                per_partition.setdefault(key, []).append((t, rank, seq, it))
        merged = heapq.merge(*per_partition.values(), key=lambda x: (x[0], x[1], x[2]))
        return refused + [x[3] for x in merged]

    async def process(self, batch: Sequence[InMessage]) -> tuple[list[OutRecord], BatchStats]:
        """The records to produce for ``batch`` and what happened (see the module docstring)."""
        items = self._in_time_order([self._decode(m) for m in batch])
        state_keys: list[str] = []
        record_keys: list[str] = []
        for it in items:
            if it.decoded is None:
                continue
            if it.msg.topic == self.label_topic:
                state_keys += [state_key(g, e) for g, e in self._label_keys(it.decoded)]
            else:
                state_keys += [state_key(g, e) for g, e in self._event_keys(it.decoded)]
                record_keys.append(output_key(self.stream, it.decoded.event_id))
        if not state_keys:
            return self._compute(items, {}, {})[1]
        return await self.store.transact(
            state_keys, record_keys, lambda states, records: self._compute(items, states, records)
        )

    def _compute(
        self, items: list[_Item], states: dict[str, GroupState], records: dict[str, bytes | None]
    ) -> tuple[Writes, tuple[list[OutRecord], BatchStats]]:
        """Depends only on what it is given (it runs again, on fresh states, after a conflict)."""

        def state(g: FeatureGroup, eid: str) -> GroupState:
            return states[state_key(g, eid)]

        writes, stats = Writes(), BatchStats()
        emitted: dict[str, bytes] = {}
        out: list[OutRecord] = []
        now = self.clock()
        for it in items:
            msg = it.msg
            if it.decoded is None:
                assert it.error is not None
                out.append(self._dead_letter(msg, it.error))
                stats.dead_letters[it.error.reason] += 1
                continue
            if msg.topic == self.label_topic:
                targets = self._label_keys(it.decoded)
                if not targets:
                    stats.labels["unplaced"] += 1
                for g, eid in targets:
                    stats.labels[apply_label(plan_for(g), state(g, eid), it.decoded)] += 1
                continue
            event = it.decoded
            okey = output_key(self.stream, event.event_id)
            value = emitted.get(okey) or records.get(okey)
            if value is None:
                keys = self._event_keys(event)
                try:
                    self.time_bounds.check(to_us(event.event_time), now)
                    value = self._features(
                        event, [state(g, e) for g, e in keys], now, writes, stats
                    )
                except FeatureInputError as err:
                    error = ContractError(
                        "semantic",
                        f"{err.reason}: {err.detail}",
                        field=f"$.{err.field}",
                        schema=self.event_contract.schema_id,
                    )
                    out.append(self._dead_letter(msg, error))
                    stats.dead_letters[error.reason] += 1
                    continue
                emitted[okey] = value
                writes.strings[okey] = (value, self.record_ttl_s)
                stats.events["computed"] += 1
            else:
                stats.events["duplicate"] += 1
            out.append(OutRecord(self.feature_topic, msg.key, value, (), msg.timestamp_ms))
        for key, s in states.items():
            put, delete = s.changes()
            if put or delete:
                writes.hashes[key] = (put, delete, s.plan.ttl_s)
        return writes, (out, stats)

    def _features(
        self, event: Event, states: list[GroupState], now: float, writes: Writes, stats: BatchStats
    ) -> bytes:
        result = apply_event(self.stream, event, *states)
        t_us = to_us(event.event_time)
        computed_at = datetime.fromtimestamp(now, tz=UTC)
        lag_s = max(0.0, now - t_us / 1e6)
        freshness: dict[str, float | None] = {}
        for g, s in zip(self.groups, states, strict=True):
            r = result.groups[g.name]
            freshness[g.name] = lag_s if r.status == "PRESENT" else None
            if r.late:
                stats.late[g.name] += 1
            if r.outcome is Outcome.ACCEPTED and s.events.watermark == t_us:
                eid = entity_id(g, event)
                assert eid is not None
                blob = pack(g, r.values, event_time_us=t_us, written_us=int(now * 1e6))
                writes.strings[vector_key(g, eid)] = (blob, s.plan.ttl_s)
        message = self.feature_type(
            event=event,
            values=result.values,
            feature_statuses=result.statuses,
            feature_freshness=freshness,
            computed_at=computed_at,
            schema_hash=self.schema_hash,
        )
        return encode(message)
