"""The topic catalogue: every topic streamscore reads or writes, and how it is configured.

Topic names of the four streams are declared once here (DESIGN.md §1); the
contracts registry maps them to message types.

>>> STREAMS["transactions"].decision_topic
'decisions.transactions'
>>> STREAMS["transactions"].shadow_decision_topic
'shadow.decisions.transactions'
>>> dlq_topic("events.logins")
'dlq.events.logins'
>>> len({t.name for t in catalogue(partitions=3, replication=1)}) == len(catalogue(3, 1))
True
"""

from __future__ import annotations

from dataclasses import dataclass, field

HOUR_MS = 3_600_000


@dataclass(frozen=True)
class Stream:
    """One of the four streams and the topics that belong to it."""

    name: str
    input_topic: str
    feature_topic: str
    decision_topic: str
    label_topic: str
    scored_log_topic: str
    #: Decisions of a challenger model in shadow: never read by callers (model rollout).
    shadow_decision_topic: str
    #: The event field whose value is the Kafka key (one entity stays on one partition).
    key_field: str


def _stream(name: str, decision_suffix: str, label_suffix: str, key_field: str) -> Stream:
    return Stream(
        name=name,
        key_field=key_field,
        input_topic=f"events.{name}",
        feature_topic=f"features.{name}",
        decision_topic=f"decisions.{decision_suffix}",
        label_topic=f"labels.{label_suffix}",
        scored_log_topic=f"scored.{name}",
        shadow_decision_topic=f"shadow.decisions.{decision_suffix}",
    )


STREAMS: dict[str, Stream] = {
    s.name: s
    for s in (
        _stream("transactions", "transactions", "chargebacks", "customer_id"),
        _stream("logins", "logins", "account_takeovers", "account_id"),
        _stream("sensor_readings", "sensors", "failures", "machine_id"),
        _stream("clickstream", "clickstream", "conversions", "session_id"),
    )
}

#: Drift incidents and retraining triggers of the monitor (``streamscore monitor``).
DRIFT_ALERT_TOPIC = "alerts.drift"
ALERT_TOPICS = (DRIFT_ALERT_TOPIC, "alerts.anomaly", "alerts.ops")
LABELLED_EXAMPLES_TOPIC = "examples.labelled"


def dlq_topic(source_topic: str) -> str:
    """The dead-letter topic of an input topic."""
    return f"dlq.{source_topic}"


@dataclass(frozen=True)
class TopicSpec:
    """A topic with its partitions and configuration."""

    name: str
    partitions: int
    replication: int
    config: dict[str, str] = field(default_factory=dict)
    purpose: str = ""


def catalogue(
    partitions: int,
    replication: int,
    *,
    retention_hours: int = 7 * 24,
    dlq_retention_hours: int = 30 * 24,
    max_message_bytes: int = 2 * 1024 * 1024,
) -> list[TopicSpec]:
    """Every topic of the system with its settings.

    Input, feature, decision and scored-log topics share one partition count so
    that an entity stays co-partitioned from event to decision. DLQs keep their
    records longer: they are replayed after a fix. Labels keep theirs for 180
    days (chargebacks arrive up to ~120 days late).
    """
    min_isr = str(min(2, replication))
    base = {
        "retention.ms": str(retention_hours * HOUR_MS),
        "min.insync.replicas": min_isr,
        "max.message.bytes": str(max_message_bytes),
    }
    dlq = {**base, "retention.ms": str(dlq_retention_hours * HOUR_MS)}
    labels = {**base, "retention.ms": str(180 * 24 * HOUR_MS)}
    specs: list[TopicSpec] = []

    def add(name: str, cfg: dict[str, str], purpose: str, parts: int = partitions) -> None:
        specs.append(TopicSpec(name, parts, replication, dict(cfg), purpose))

    for s in STREAMS.values():
        add(s.input_topic, base, f"{s.name} events from producers")
        add(s.feature_topic, base, f"{s.name} events enriched with their feature vector")
        add(s.decision_topic, base, f"{s.name} decisions for consumers")
        add(s.shadow_decision_topic, base, f"{s.name} decisions of a challenger in shadow")
        add(s.label_topic, labels, f"delayed labels for {s.name}")
        add(s.scored_log_topic, labels, f"scored-event log of {s.name} (training and audit)")
        for source in (s.input_topic, s.feature_topic, s.label_topic, s.scored_log_topic):
            add(dlq_topic(source), dlq, f"dead letters of {source}")
    for name in ALERT_TOPICS:
        add(name, base, "monitor alerts", parts=1)
    add(LABELLED_EXAMPLES_TOPIC, labels, "labelled examples for retraining")
    return specs
