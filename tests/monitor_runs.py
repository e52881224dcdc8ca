"""Shared steps of the monitor tests: simulated worlds with and without a drift, as scored logs.

A world with a drift and the same world without it are identical up to the
drift's first day (the simulator draws drifts from their own generator), so
their features are computed once up to there and the two runs continue from
copies of that state. Records are scored as the scorer does
(:func:`~streamscore.libs.scoring.decide.decide`, the stream's shipped policy,
the model when given), with the decision time set to the batch's event time
so that the degraded path's per-minute budgets follow simulated time.
"""

from __future__ import annotations

import copy
import math
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

from confluent_kafka import Consumer, KafkaException, TopicPartition

from streamscore.libs.config import Settings
from streamscore.libs.contracts.codec import encode
from streamscore.libs.contracts.features import FeatureVector
from streamscore.libs.contracts.registry import contract_for
from streamscore.libs.contracts.scored import ScoredEvent
from streamscore.libs.features.definitions import groups, hash_feature_names, model_features
from streamscore.libs.features.offline import OfflineFeatures
from streamscore.libs.policy.budget import DegradedBudget
from streamscore.libs.scoring.decide import ScoreModel, decide
from streamscore.libs.simulator.clicks import ClickStreamConfig
from streamscore.libs.simulator.drift import DriftSpec
from streamscore.libs.simulator.logins import LoginStreamConfig
from streamscore.libs.simulator.records import SimRecord
from streamscore.libs.simulator.scenario import Scenario, get
from streamscore.libs.simulator.sensors import SensorStreamConfig
from streamscore.libs.topics import DRIFT_ALERT_TOPIC, STREAMS, TopicSpec, dlq_topic
from streamscore.services.clients import make_admin, make_producer
from streamscore.services.scorer import default_policy
from streamscore.services.topics_admin import create_topics

DAY_S = 86_400
BATCH = 500

#: The drift scenario's drifts (same parameters), the stream each belongs to.
DRIFTS: dict[str, DriftSpec] = {d.kind: d for d in get("drift").drifts}

#: Small worlds: the ``small`` scenario, sensors sampled every 15 minutes.
WORLD: Scenario = replace(
    get("small"),
    logins=LoginStreamConfig(n_accounts=2_000),
    sensors=SensorStreamConfig(n_machines=8, interval_s=900.0),
    clicks=ClickStreamConfig(n_users=2_000),
)


@dataclass(frozen=True)
class ScoredRun:
    """One run's scored-event log: (key, value) per record, in event-time order."""

    records: list[tuple[bytes, bytes]]
    first_time_s: float
    last_time_s: float


def world(
    kind: str,
    *,
    days: int,
    drift_day: int,
    drifted: bool,
    params: dict[str, Any] | None = None,
) -> Scenario:
    """The small world of the drift ``kind``'s stream, with the drift from ``drift_day`` or not.

    ``params`` overrides the drift scenario's parameters of the drift.
    """
    spec = DRIFTS[kind]
    spec = replace(spec, start_day=drift_day, params={**spec.params, **(params or {})})
    drifts = (spec,) if drifted else ()
    return replace(WORLD.only(spec.stream), drifts=drifts).with_days(days)


class _Scoring:
    """The offline feature state and the scorer's budget of one run (copied at the fork)."""

    def __init__(self, stream: str) -> None:
        self.stream = stream
        self.features = OfflineFeatures(stream)
        policy = default_policy(stream)
        self.budget = DegradedBudget(
            max_approvals_per_minute=policy.degraded.max_approvals_per_minute,
            max_exposure_per_minute=policy.degraded.max_exposure_per_minute,
        )
        self.pending: list[FeatureVector] = []
        self.out: list[tuple[bytes, bytes]] = []

    def take(self, record: SimRecord, model: ScoreModel | None) -> None:
        s = STREAMS[self.stream]
        if record.topic == s.label_topic:
            self.features.label(record.event)
            return
        res = self.features.event(record.event)
        ftype = contract_for(s.feature_topic).type
        self.pending.append(
            ftype(  # type: ignore[call-arg]
                event=record.event,
                values=res.values,
                feature_statuses=res.statuses,
                feature_freshness={g: 0.0 for g in res.statuses},
                computed_at=record.event.event_time,
                schema_hash=hash_feature_names(model_features(self.stream)),
            )
        )
        if len(self.pending) >= BATCH:
            self.flush(model)

    def flush(self, model: ScoreModel | None) -> None:
        if not self.pending:
            return
        vectors, self.pending = self.pending, []
        s = STREAMS[self.stream]
        key_fields = sorted({g.entity.join_key for g in groups(self.stream)})
        now = max(v.event.event_time for v in vectors)  # type: ignore[attr-defined]
        scored = decide(
            vectors,
            stream=self.stream,
            policy=default_policy(self.stream),
            model=model,
            feature_names=model_features(self.stream),
            key_fields=key_fields,
            now=now,
            budget=self.budget,
        )
        names_hash = hash_feature_names(scored.feature_names)
        for v, d, row in zip(vectors, scored.decisions, scored.X, strict=True):
            ev = v.event  # type: ignore[attr-defined]
            rec = ScoredEvent(
                event_id=ev.event_id,
                event_time=ev.event_time,
                stream=self.stream,
                keys={k: str(getattr(ev, k)) for k in key_fields if getattr(ev, k, None)},
                feature_names_hash=names_hash,
                values=[None if math.isnan(x) else x for x in row.tolist()],
                model_version=d.model_version,
                policy_version=d.policy_version,
                score=d.score,
                decision=str(d.decision),  # type: ignore[attr-defined]
                policy_path=d.policy_path,
                degraded=d.degraded,
                feature_freshness=dict(d.feature_freshness),
                decided_at=d.decided_at,
            )
            key = str(getattr(ev, s.key_field)).encode()
            self.out.append((key, encode(rec)))


def scored_runs(
    kind: str,
    *,
    days: int,
    drift_day: int,
    seed: int,
    model: ScoreModel | None = None,
    params: dict[str, Any] | None = None,
) -> tuple[ScoredRun, ScoredRun]:
    """The scored-event logs of the world with the drift and without it (same seed)."""
    spec = {"days": days, "drift_day": drift_day, "params": params}
    drifted = list(world(kind, drifted=True, **spec).records(seed))  # type: ignore[arg-type]
    steady = list(world(kind, drifted=False, **spec).records(seed))  # type: ignore[arg-type]
    common = 0
    for a, b in zip(drifted, steady, strict=False):
        if a.topic != b.topic or a.event != b.event:
            break
        common += 1
    stream = DRIFTS[kind].stream
    base = _Scoring(stream)
    for r in drifted[:common]:
        base.take(r, model)
    runs = []
    for records in (drifted, steady):
        run = copy.deepcopy(base)
        for r in records[common:]:
            run.take(r, model)
        run.flush(model)
        times = [r.event.event_time.timestamp() for r in records]
        runs.append(ScoredRun(run.out, min(times), max(times)))
    return runs[0], runs[1]


def committed_offsets(bootstrap: str, group: str, topic: str, partitions: int) -> list[int]:
    """The group's committed offset per partition (-1001: none yet)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        tps = c.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
        return [tp.offset for tp in tps]
    finally:
        c.close()


def end_offsets(bootstrap: str, topic: str, partitions: int) -> list[int]:
    """The high watermark of each partition."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": uuid.uuid4().hex})
    try:
        return [
            c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in range(partitions)
        ]
    finally:
        c.close()


def wait_consumed(
    bootstrap: str, group: str, topic: str, partitions: int, timeout_s: float = 60.0
) -> bool:
    """Wait until ``group`` has committed everything ``topic`` holds."""
    ends = end_offsets(bootstrap, topic, partitions)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if committed_offsets(bootstrap, group, topic, partitions) == ends:
                return True
        except KafkaException:  # e.g. NOT_COORDINATOR while the group's coordinator loads
            pass
        time.sleep(0.5)
    return False


def hours(seconds: float) -> float:
    return round(seconds / 3600, 1)


def summary(alerts: Sequence[Any], drift_start_s: float) -> list[str]:
    """Readable lines: kind, first signal, segment, delay after the drift's start (h)."""
    out = []
    for a in alerts:
        delay = hours(a.confirmed_at.timestamp() - drift_start_s)
        first = hours(a.first_evidence_at.timestamp() - drift_start_s)
        name = f"{a.signal}:{a.feature}" if a.feature else a.signal
        out.append(
            f"{a.kind} {name} [{a.segment}] confirmed +{delay} h (evidence from {first:+} h), "
            f"effect {a.effect_sds:+.2f} sd, {len(a.related)} related"
        )
    return out


def chunks(xs: Sequence[Any], n: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(xs), n):
        yield xs[i : i + n]


def publish_scored_log(
    settings: Settings,
    stream: str,
    prefix: str,
    records: Sequence[tuple[bytes, bytes]],
    partitions: int = 3,
) -> None:
    """Create the prefix's scored log, its DLQ and the alert topic (if absent) and publish
    ``records`` (key, value) to the log."""
    topic = prefix + STREAMS[stream].scored_log_topic
    create_topics(
        make_admin(settings),
        [
            TopicSpec(topic, partitions, 1),
            TopicSpec(dlq_topic(topic), 1, 1),
            TopicSpec(prefix + DRIFT_ALERT_TOPIC, 1, 1),
        ],
    )
    producer = make_producer(settings, client_id="it-monitor")
    for part in chunks(records, 5000):
        for key, value in part:
            producer.send(topic, value, key=key)
        producer.poll(0)
    assert producer.flush(60) == 0
