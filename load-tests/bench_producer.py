"""``streamscore bench producer``: how fast the simulator publishes, and how well it keeps a rate.

Needs a running stack (``streamscore up``, or KAFKA_BOOTSTRAP). Rows:

1. unpaced throughput of ``streamscore produce`` (generate + encode + send +
   all acknowledged), against raw confluent-kafka sending the same already
   encoded messages with the same settings (the ceiling of a Python producer);
2. paced run at ``--rate`` for ``--seconds``: achieved rate and its error.
"""

from __future__ import annotations

import argparse
import itertools
import time
from importlib.metadata import version
from typing import Any

import confluent_kafka

from streamscore.libs.config import Settings
from streamscore.libs.contracts.codec import encode
from streamscore.libs.simulator.scenario import get
from streamscore.services.clients import make_producer
from streamscore.services.sim_producer import KEY_FIELD, publish


def parse_args(argv: list[str]) -> dict[str, Any]:
    p = argparse.ArgumentParser(prog="streamscore bench producer")
    p.add_argument("--records", type=int, default=300_000)
    p.add_argument("--rate", type=float, default=5_000)
    p.add_argument("--seconds", type=float, default=30)
    return vars(p.parse_args(argv))


def _quiet(_msg: str) -> None:
    pass


def run(records: int = 300_000, rate: float = 5_000, seconds: float = 30) -> dict[str, Any]:
    settings = Settings()
    scenario = get("default").with_days(60)

    # Warm the producer (idempotent producer id, metadata) outside the timings.
    warm = make_producer(settings, client_id="bench-producer-warm")
    warm.send("events.transactions", b"{}", key=b"warm-up")
    warm.flush(30)

    ours = publish(
        scenario.records(seed=1),
        make_producer(settings, client_id="bench-producer"),
        limit=records,
        progress=_quiet,
    )
    ours_rate = ours.sent / ours.elapsed_s  # until every message is acknowledged

    payloads = [
        (r.topic, encode(r.event), getattr(r.event, KEY_FIELD[r.topic]).encode())
        for r in itertools.islice(scenario.records(seed=1), records)
    ]
    raw = make_producer(settings, client_id="bench-producer-raw")
    started = time.monotonic()
    for topic, value, key in payloads:
        raw.send(topic, value, key=key)
    raw.flush(120)
    raw_rate = len(payloads) / (time.monotonic() - started)

    paced = publish(
        scenario.records(seed=2),
        make_producer(settings, client_id="bench-producer-paced"),
        rate=rate,
        duration_s=seconds,
        progress=_quiet,
    )
    error_pct = abs(paced.rate - rate) / rate * 100
    return {
        "bench": "producer",
        "conditions": {
            "scenario": "default (5,000 customers, 10,000 terminals)",
            "records": records,
            "paced_rate": rate,
            "paced_seconds": seconds,
            "confluent_kafka": version("confluent-kafka"),
            "librdkafka": confluent_kafka.libversion()[0],
            "acks": "all",
            "idempotence": True,
            "linger_ms": 1,
            "failed": sum(ours.failed.values()) + sum(paced.failed.values()),
        },
        "rows": [
            {
                "metric": "produce records/s (generate+encode+send, all acked)",
                "value": round(ours_rate),
                "unit": "records/s",
                "baseline_name": "raw confluent-kafka send of pre-encoded records",
                "baseline": round(raw_rate),
                "ratio": round(ours_rate / raw_rate, 3),
                "better": "higher",
            },
            {
                "metric": f"paced rate over {seconds:.0f} s (target {rate:,.0f}/s)",
                "value": round(paced.rate, 1),
                "unit": "records/s",
                "baseline_name": "target rate",
                "baseline": rate,
                "ratio": round(paced.rate / rate, 4),
                "better": "equal",
            },
            {
                "metric": "paced rate error",
                "value": round(error_pct, 3),
                "unit": "%",
                "better": "lower",
            },
            {
                "metric": "paced: most behind schedule",
                "value": round(paced.max_behind_s * 1000, 1),
                "unit": "ms",
                "better": "lower",
            },
        ],
    }
