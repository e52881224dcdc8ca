"""Create and list the catalogue's topics (idempotent)."""

from __future__ import annotations

from dataclasses import dataclass

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from streamscore.libs.topics import TopicSpec


@dataclass(frozen=True)
class TopicOutcome:
    """What happened to one topic of a ``create`` call."""

    name: str
    status: str  # "created" | "exists" | "exists-different" | "error: ..."
    partitions: int


def create_topics(
    admin: AdminClient, specs: list[TopicSpec], *, timeout_s: float = 30.0
) -> list[TopicOutcome]:
    """Create every topic that does not exist yet; report the others.

    1. Ask for all creations in one request (the broker handles them in parallel).
    2. ``TOPIC_ALREADY_EXISTS`` is success: running twice is safe.
    3. An existing topic with fewer partitions than configured is reported as
       ``exists-different`` and left alone: changing partitions moves keys to
       other partitions, which is an operator's decision, not a side effect.
    """
    if not specs:
        return []
    new = [
        NewTopic(
            s.name, num_partitions=s.partitions, replication_factor=s.replication, config=s.config
        )
        for s in specs
    ]
    futures = admin.create_topics(new, request_timeout=timeout_s, operation_timeout=timeout_s)
    existing = admin.list_topics(timeout=timeout_s).topics
    out: list[TopicOutcome] = []
    for spec in specs:
        try:
            futures[spec.name].result(timeout=timeout_s)
            out.append(TopicOutcome(spec.name, "created", spec.partitions))
        except KafkaException as exc:
            err: KafkaError = exc.args[0]
            if err.code() != KafkaError.TOPIC_ALREADY_EXISTS:
                out.append(TopicOutcome(spec.name, f"error: {err.str()}", spec.partitions))
                continue
            meta = existing.get(spec.name)
            have = len(meta.partitions) if meta is not None else spec.partitions
            status = "exists" if have == spec.partitions else "exists-different"
            out.append(TopicOutcome(spec.name, status, have))
    return out


def list_topics(admin: AdminClient, *, timeout_s: float = 10.0) -> dict[str, int]:
    """Every non-internal topic with its partition count."""
    meta = admin.list_topics(timeout=timeout_s)
    return {
        name: len(t.partitions)
        for name, t in sorted(meta.topics.items())
        if not name.startswith("__")
    }
