"""``streamscore replay EVENT_ID``: reproduce a logged decision from the scored-event log.

1. Find the event's record on ``scored.<stream>`` (the exact model input vector,
   the model and policy versions, the outcome).
2. Load that model version (a verified model folder whose manifest names it)
   and that policy version (the policy store's history, or the shipped file).
3. Score the logged vector and apply the policy with the logged degraded reason.
4. Compare score (bit for bit, as float32 → float64) and outcome with the log.

The degraded-approval budget is the one input that is not logged (it depends on
the minute around the decision): a replayed degraded approval is reported as
such rather than compared.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from confluent_kafka import Consumer, KafkaError

from streamscore.libs.config import Settings
from streamscore.libs.contracts.codec import decode
from streamscore.libs.contracts.scored import ScoredEvent
from streamscore.libs.features.definitions import hash_feature_names, model_features
from streamscore.libs.policy.engine import BatchInput, decide_batch
from streamscore.libs.policy.spec import Policy
from streamscore.libs.security import kafka_security_config
from streamscore.libs.topics import STREAMS
from streamscore.services.clients import endpoints
from streamscore.services.policy_store import PolicyStore
from streamscore.services.scorer import default_policy, load_model


class ReplayError(LookupError):
    """The event, its model version or its policy version cannot be found."""


@dataclass(frozen=True)
class ReplayResult:
    """The logged decision beside the replayed one."""

    logged: ScoredEvent
    score: float | None
    decision: str
    policy_path: str

    @property
    def identical(self) -> bool:
        return (self.score, self.decision, self.policy_path) == (
            self.logged.score,
            self.logged.decision,
            self.logged.policy_path,
        )


def find_scored(
    settings: Settings,
    stream: str,
    event_id: str,
    *,
    topic_prefix: str = "",
    timeout_s: float = 30.0,
) -> ScoredEvent:
    """The scored-event record of ``event_id`` (the last one if it was scored twice)."""
    topic = topic_prefix + STREAMS[stream].scored_log_topic
    consumer = Consumer(
        {
            "bootstrap.servers": endpoints(settings).kafka_bootstrap,
            "group.id": f"streamscore-replay-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
            **kafka_security_config(settings),
        }
    )
    consumer.subscribe([topic])
    found: ScoredEvent | None = None
    partitions = len(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
    at_end: set[int] = set()
    deadline = time.monotonic() + timeout_s
    try:
        while len(at_end) < partitions and time.monotonic() < deadline:
            for m in consumer.consume(5000, timeout=0.5):
                err = m.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        at_end.add(m.partition() or 0)
                    continue
                if event_id.encode() not in (m.value() or b""):
                    continue  # cheap filter before decoding
                rec = decode(ScoredEvent, m.value() or b"", max_bytes=settings.max_message_bytes)
                if rec.event_id == event_id:
                    found = rec
    finally:
        consumer.close()
    if found is None:
        raise ReplayError(f"{event_id}: not in {topic}")
    return found


def policy_version(store: PolicyStore, stream: str, version: str) -> Policy:
    """A policy version from the store's history, or the shipped file if it is that version."""
    for p in store.history(stream):
        if p.version == version:
            return p
    shipped = default_policy(stream)
    if shipped.version == version:
        return shipped
    raise ReplayError(f"policy {version} of {stream} is neither in the store nor shipped")


def replay(rec: ScoredEvent, *, policy: Policy, model_dir: Path | None) -> ReplayResult:
    """Re-decide a logged event with its model and policy versions."""
    if rec.policy_version != policy.version:
        raise ReplayError(f"policy {rec.policy_version} needed, {policy.version} given")
    names = model_features(rec.stream)
    if hash_feature_names(names) != rec.feature_names_hash:
        raise ReplayError("the logged vector was built under another feature schema")
    X = np.array([[np.nan if v is None else v for v in rec.values]], dtype=np.float32)
    scores = np.full(1, np.nan)
    if rec.model_version != "none":
        if model_dir is None:
            raise ReplayError(f"model {rec.model_version} needed: give its folder")
        session, _reasons = load_model(model_dir, rec.stream)
        if session.version != rec.model_version:
            raise ReplayError(f"model {rec.model_version} needed, {session.version} given")
        scores = np.asarray(session.predict(X), dtype=np.float64)
    degraded = None if rec.degraded in (None, "no_score") else rec.degraded
    batch = BatchInput(
        scores,
        X,
        {n: i for i, n in enumerate(names)},
        {k: [v] for k, v in rec.keys.items()},
        [degraded],
    )
    d = decide_batch(policy, batch, now_s=rec.decided_at.timestamp())[0]
    score = None if np.isnan(scores[0]) else min(1.0, max(0.0, float(scores[0])))
    return ReplayResult(rec, score, d.outcome, d.policy_path)
