"""A consumer that tails decision topics as they become readable, for benchmarks and oracles.

Each record is kept with the wall time it was received (``received``), so a
benchmark measures producer timestamp → decision readable, and an oracle
(DESIGN.md §6) decodes the fields it compares (:class:`DecisionRecord`) and
counts lost, duplicate and conflicting decisions afterwards. It reads
``read_committed`` from the earliest offset with a group of its own and never
commits.
"""

from __future__ import annotations

import threading
import time
import uuid

import msgspec
from confluent_kafka import Consumer


class DecisionRecord(msgspec.Struct):
    """The fields of a decision record an oracle compares."""

    event_id: str
    decision: str
    score: float | None
    model_version: str


class DecisionTail(threading.Thread):
    """Receives the records of ``topics``; ``received`` holds (receive wall time, value)."""

    def __init__(self, bootstrap: str, topics: list[str]) -> None:
        super().__init__(daemon=True)
        self.consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": uuid.uuid4().hex,
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                "fetch.wait.max.ms": 100,
                "isolation.level": "read_committed",
            }
        )
        self.consumer.subscribe(topics)
        self.received: list[tuple[float, bytes]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            # poll() returns as soon as one record is there; consume(n) would wait
            # for n records or its timeout and add that wait to every latency.
            m = self.consumer.poll(0.05)
            if m is not None and m.error() is None:
                self.received.append((time.time(), m.value() or b""))
        self.consumer.close()

    def decisions(self) -> list[tuple[float, DecisionRecord]]:
        """What was received so far, decoded."""
        return [(at, msgspec.json.decode(v, type=DecisionRecord)) for at, v in self.received]
