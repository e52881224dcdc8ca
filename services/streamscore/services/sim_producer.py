"""``streamscore produce``: publish a scenario to Kafka at a steady rate or a replay speed.

Events go to their input topics and labels to their label topics, keyed by the
stream's entity key (so an entity's events and labels share a partition
number), in event-time order: a label is published when the scenario clock
passes its arrival. The Kafka timestamp is the wall-clock send time; the
event's ``event_time`` stays the scenario time.
"""

from __future__ import annotations

import itertools
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from streamscore.libs.contracts.codec import encode
from streamscore.libs.simulator.records import SimRecord
from streamscore.libs.topics import STREAMS
from streamscore.services.kafka_producer import Producer

Progress = Callable[[str], None]

#: The key field of every topic the simulator writes (input and label topics).
KEY_FIELD: dict[str, str] = {
    topic: s.key_field for s in STREAMS.values() for topic in (s.input_topic, s.label_topic)
}
_CHECK_EVERY = 64


@dataclass
class ProduceStats:
    """What a run published, and how well it kept its schedule."""

    sent: int = 0
    by_topic: Counter[str] = field(default_factory=Counter)
    elapsed_s: float = 0.0
    #: Time spent sending, before the final flush (the paced phase).
    send_s: float = 0.0
    max_behind_s: float = 0.0
    acked: int = 0
    failed: dict[str, int] = field(default_factory=dict)
    unsent: int = 0

    @property
    def rate(self) -> float:
        """Records per second over the sending phase."""
        return self.sent / self.send_s if self.send_s else 0.0


def publish(
    records: Iterable[SimRecord],
    producer: Producer,
    *,
    rate: float | None = None,
    speedup: float | None = None,
    duration_s: float | None = None,
    limit: int | None = None,
    topic_prefix: str = "",
    progress: Progress = print,
    on_send: Callable[[SimRecord], None] | None = None,
) -> ProduceStats:
    """Publish ``records``; pacing by ``rate`` (records/s) or ``speedup`` (× event time).

    Pacing, every few records:

    1. The schedule says when record *i* is due: ``i / rate`` seconds after the
       start, or its event-time offset divided by ``speedup``.
    2. Ahead of schedule: sleep until it is due (serving delivery reports).
    3. Behind: send at once and record how far behind (``max_behind_s``), so a
       producer that cannot keep up is visible rather than silently slow.

    ``topic_prefix`` namespaces the topics (``<prefix><topic>``), e.g. for an
    isolated test run or a second tenant on one cluster. ``on_send`` is called
    with each record just before it is sent (e.g. to note its send time).
    """
    if rate is not None and speedup is not None:
        msg = "give a rate or a speedup, not both"
        raise ValueError(msg)
    stats = ProduceStats()
    iterator = iter(records)
    # The first record may take a while (a simulator draws its world lazily):
    # the schedule starts once it is there.
    head = next(iterator, None)
    if head is None:
        return stats
    started = last_report = time.monotonic()
    first_time = head.time
    sent_at_report = 0
    for i, record in enumerate(itertools.chain([head], iterator)):
        if (limit is not None and i >= limit) or (
            duration_s is not None and time.monotonic() - started >= duration_s
        ):
            break
        if i % _CHECK_EVERY == 0:
            due = i / rate if rate else None
            if speedup:
                due = (record.time - first_time).total_seconds() / speedup
            now = time.monotonic() - started
            if due is not None:
                if due > now:
                    producer.poll(due - now)
                    while time.monotonic() - started < due:
                        time.sleep(max(0.0, due - (time.monotonic() - started)))
                else:
                    stats.max_behind_s = max(stats.max_behind_s, now - due)
            if now - (last_report - started) >= 1.0:
                interval = now - (last_report - started)
                progress(
                    f"sent {i:,} ({(i - sent_at_report) / interval:,.0f}/s), "
                    f"acked {producer.acked:,}, scenario clock {record.time:%Y-%m-%d %H:%M}"
                )
                last_report, sent_at_report = time.monotonic(), i
        key = getattr(record.event, KEY_FIELD[record.topic])
        topic = topic_prefix + record.topic
        if on_send is not None:
            on_send(record)
        producer.send(topic, encode(record.event), key=key.encode())
        stats.sent += 1
        stats.by_topic[topic] += 1
    stats.send_s = time.monotonic() - started
    stats.unsent = producer.flush(60)
    stats.elapsed_s = time.monotonic() - started
    stats.acked = producer.acked
    stats.failed = dict(producer.failed)
    return stats
