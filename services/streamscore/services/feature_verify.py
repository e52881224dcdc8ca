"""``streamscore features verify``: recompute features offline from the topics and compare.

A shadow consumer (no group commits) reads the stream's label topic up to its
current end first, then its event and feature topics from the beginning (and
new labels as they come). It recomputes every event's features with the
offline path (:class:`~streamscore.libs.features.offline.OfflineFeatures`; a
label counts for an event only from its arrival time on, so reading labels
first is exact) and compares them with what the processor published
(:mod:`streamscore.libs.features.agreement`). Events are recomputed in
event-time order across partitions (each partition's own order kept, the
partition with the earliest head goes next, as Kafka Streams picks records),
which is the order the processor sees when it keeps up with live traffic. The per-feature
mismatch ratio goes to ``streamscore_feature_mismatch_ratio`` (and is printed).

With ``--follow`` it keeps consuming and comparing until stopped (serving the
gauge on ``/metrics``); otherwise it stops once it is caught up. For entities
that are not the topic's key, the processor may see events in another order
than this consumer: a mismatch there measures how much the features depend on
consumption order, which is what the gauge is for.
"""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from streamscore.libs.config import Settings
from streamscore.libs.contracts.base import Event
from streamscore.libs.contracts.codec import decode
from streamscore.libs.contracts.errors import ContractError
from streamscore.libs.contracts.features import FeatureVector, event_of
from streamscore.libs.contracts.registry import contract_for
from streamscore.libs.features.agreement import Agreement
from streamscore.libs.features.compute import EventResult, FeatureInputError
from streamscore.libs.features.definitions import model_features
from streamscore.libs.features.offline import OfflineFeatures
from streamscore.libs.security import kafka_security_config
from streamscore.libs.topics import STREAMS
from streamscore.services.clients import endpoints
from streamscore.services.metrics import FeatureMetrics
from streamscore.services.shutdown import stop_on_signals

#: Unmatched vectors kept while waiting for their counterpart (oldest dropped beyond).
MAX_PENDING = 200_000


@dataclass
class VerifyResult:
    """What a verification pass compared."""

    agreement: Agreement
    unmatched: int
    refused: int


class FeatureVerifier:
    """Incremental online/offline comparison of one stream."""

    def __init__(self, stream: str, *, topic_prefix: str = "", max_bytes: int = 2 << 20) -> None:
        spec = STREAMS[stream]
        self.stream = stream
        self.max_bytes = max_bytes
        self.event_topic = topic_prefix + spec.input_topic
        self.label_topic = topic_prefix + spec.label_topic
        self.feature_topic = topic_prefix + spec.feature_topic
        self.event_type = contract_for(spec.input_topic).type
        self.label_type = contract_for(spec.label_topic).type
        self.feature_type = contract_for(spec.feature_topic).type
        self.offline = OfflineFeatures(stream)
        self.agreement = Agreement(model_features(stream))
        self.online: OrderedDict[str, Any] = OrderedDict()
        self.computed: OrderedDict[str, EventResult] = OrderedDict()
        self.unmatched = 0
        self.refused = 0
        #: Decoded events waiting for the event-time merge, per partition.
        self.buffers: dict[int, deque[Event]] = {}

    @property
    def topics(self) -> list[str]:
        return [self.event_topic, self.label_topic, self.feature_topic]

    def expect_partitions(self, partitions: Sequence[int]) -> None:
        """The event topic's partitions (the merge waits for each to have a record)."""
        for p in partitions:
            self.buffers.setdefault(p, deque())

    def add(self, topic: str, value: bytes, partition: int = 0) -> None:
        """One record of any of the three topics."""
        try:
            if topic == self.label_topic:
                self.offline.label(decode(self.label_type, value, max_bytes=self.max_bytes))
            elif topic == self.event_topic:
                event = cast(Event, decode(self.event_type, value, max_bytes=self.max_bytes))
                self.buffers.setdefault(partition, deque()).append(event)
                self.drain(final=False)
                return
            else:
                fv = cast(FeatureVector, decode(self.feature_type, value, max_bytes=self.max_bytes))
                self._keep(self.online, event_of(fv).event_id, fv)
        except (ContractError, FeatureInputError):
            self.refused += 1  # the processor sent it to the DLQ too
            return
        self._match()

    def drain(self, *, final: bool) -> None:
        """Recompute buffered events in event-time order; unless ``final``, only while every
        partition has a buffered event (a later record could still come first)."""
        while True:
            heads = [(q[0].event_time, p) for p, q in self.buffers.items() if q]
            if not heads or (not final and len(heads) < len(self.buffers)):
                break
            _, p = min(heads)
            event = self.buffers[p].popleft()
            try:
                self._keep(self.computed, event.event_id, self.offline.event(event))
            except FeatureInputError:
                self.refused += 1
        self._match()

    def _keep(self, d: OrderedDict[str, Any], key: str, value: Any) -> None:
        d.setdefault(key, value)
        if len(d) > MAX_PENDING:
            d.popitem(last=False)
            self.unmatched += 1

    def _match(self) -> None:
        for eid in [e for e in self.online if e in self.computed]:
            fv, off = self.online.pop(eid), self.computed.pop(eid)
            self.agreement.add(
                fv.values, off.values, same_statuses=dict(fv.feature_statuses) == off.statuses
            )

    def result(self) -> VerifyResult:
        self.drain(final=True)
        return VerifyResult(self.agreement, self.unmatched + len(self.online), self.refused)


def _partitions(consumer: Consumer, topic: str) -> list[TopicPartition]:
    meta = consumer.list_topics(topic, timeout=10).topics[topic]
    return [TopicPartition(topic, p) for p in sorted(meta.partitions)]


def _tp_of(p: TopicPartition) -> TopicPartition:
    return TopicPartition(p.topic, p.partition)


def run_verify(
    settings: Settings,
    stream: str,
    *,
    topic_prefix: str = "",
    follow: bool = False,
    idle_s: float = 5.0,
    metrics: FeatureMetrics | None = None,
) -> VerifyResult:
    """Consume the three topics from the beginning; stop when idle (unless ``follow``)."""
    verifier = FeatureVerifier(stream, topic_prefix=topic_prefix)
    consumer = Consumer(
        {
            "bootstrap.servers": endpoints(settings).kafka_bootstrap,
            "group.id": f"streamscore-verify-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            **kafka_security_config(settings),
        }
    )
    # Phase 1: every label there is now. Phase 2: events, features and new labels.
    label_parts = _partitions(consumer, verifier.label_topic)
    ends = {
        (p.topic, p.partition): consumer.get_watermark_offsets(p, timeout=10)[1]
        for p in label_parts
    }
    consumer.assign([TopicPartition(p.topic, p.partition, OFFSET_BEGINNING) for p in label_parts])
    todo = {k for k, end in ends.items() if end > 0}
    while todo:
        for m in consumer.consume(5000, timeout=1.0):
            if m.error() is None:
                verifier.add(m.topic() or "", m.value() or b"")
                if (m.offset() or 0) + 1 >= ends[(m.topic() or "", m.partition() or 0)]:
                    todo.discard((m.topic(), m.partition()))
    positions = consumer.position([_tp_of(p) for p in label_parts])
    rest = [
        TopicPartition(p.topic, p.partition, OFFSET_BEGINNING)
        for t in (verifier.event_topic, verifier.feature_topic)
        for p in _partitions(consumer, t)
    ]
    verifier.expect_partitions([p.partition for p in rest if p.topic == verifier.event_topic])
    consumer.assign(positions + rest)
    stop = stop_on_signals()
    last = time.monotonic()
    try:
        while not stop.is_set():
            msgs = [m for m in consumer.consume(2000, timeout=0.5) if m.error() is None]
            for m in msgs:
                verifier.add(m.topic() or "", m.value() or b"", m.partition() or 0)
            if not msgs:
                verifier.drain(final=True)  # nothing more for now: no later record can precede
            if msgs:
                last = time.monotonic()
                if metrics is not None:
                    for f in verifier.agreement.features:
                        metrics.mismatch.labels(stream, f).set(verifier.agreement.ratio(f))
            elif not follow and time.monotonic() - last > idle_s:
                break
    finally:
        consumer.close()
    return verifier.result()
