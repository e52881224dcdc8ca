"""Logins, sensor readings and clickstream through the faust feature processor.

Each stream's processor runs as a real process on a simulated day replayed at
a steady pace; ``streamscore features verify`` then recomputes every event
offline from the topics and compares. Groups keyed like the topic (account,
machine and its sensors, session) must agree exactly. Groups keyed by another
entity (an IP, a web user) see events from several partitions, so their
online values depend on the order partitions are consumed within a fraction
of a second; their mismatch ratio is printed and must stay under 2%.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import redis

from streamscore.libs.config import Settings
from streamscore.libs.features.definitions import groups
from streamscore.libs.simulator.scenario import get
from streamscore.libs.topics import STREAMS
from streamscore.services.clients import endpoints, make_producer
from streamscore.services.feature_verify import run_verify
from streamscore.services.sim_producer import publish
from tests.processor_runs import create_stream_topics, redis_db_url, start_processor, stop

pytestmark = pytest.mark.integration
REDIS_DB = 8
#: Groups keyed by the topic's key: one partition, one order, exact agreement.
KEYED = {"account_logins", "sensor_stats", "machine_health", "session_activity"}


#: Replay speed (event time / wall time) and span: 3 hours in ~18 s. A processor that
#: falls behind on one partition by more than grace / SPEEDUP (1 s) would drop the
#: other partitions' events of a shared entity as late: the pace keeps the replay
#: inside what the live stream would see.
SPEEDUP = 600
HOURS = 3


def _world(stream: str) -> list[Any]:
    world = get("small").only(stream).with_days(1)
    records = [r for r in world.records(seed=4) if r.topic == STREAMS[stream].input_topic]
    start = records[0].event.event_time
    return [r for r in records if (r.event.event_time - start).total_seconds() < HOURS * 3600]


@pytest.mark.parametrize("stream", ["logins", "sensor_readings", "clickstream"])
def test_stream_features_online_equal_offline(
    stack_settings: Settings, stream: str, tmp_path: Path
) -> None:
    ep = endpoints(stack_settings)
    url = redis_db_url(ep.redis_url, REDIS_DB)
    r = redis.Redis.from_url(url)
    r.flushdb()
    prefix = f"it-{uuid.uuid4().hex[:8]}."
    create_stream_topics(stack_settings, stream, prefix, labels=False)
    records = _world(stream)
    assert len(records) > 150
    log = tmp_path / "processor.log"
    proc = start_processor(stream, prefix, bootstrap=ep.kafka_bootstrap, redis_url=url, log=log)
    try:
        time.sleep(3)  # let the group form, so the replay below is consumed as it comes
        producer = make_producer(stack_settings, client_id="it-streams")
        publish(records, producer, topic_prefix=prefix, speedup=SPEEDUP, progress=lambda _: None)
        res = run_verify(stack_settings, stream, topic_prefix=prefix, idle_s=8.0)
        assert proc.poll() is None, log.read_text()
    finally:
        stop(proc)
        r.flushdb()
    a = res.agreement
    assert a.compared == len(records), log.read_text()[-3000:]
    for g in groups(stream):
        for f in g.feature_names:
            if g.name in KEYED:
                assert a.mismatches[f] == 0, (f, a.mismatches[f])
            else:
                print(f"{stream} {f}: mismatch ratio {a.ratio(f):.4f}")
                assert a.ratio(f) < 0.02, (f, a.ratio(f))
