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

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import redis

from streamscore.libs.config import Settings
from streamscore.libs.features.definitions import groups
from streamscore.libs.simulator.scenario import get
from streamscore.libs.topics import STREAMS, TopicSpec, dlq_topic
from streamscore.services.clients import endpoints, make_admin, make_producer
from streamscore.services.feature_verify import run_verify
from streamscore.services.sim_producer import publish
from streamscore.services.topics_admin import create_topics

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
    base = get("small")
    world = type(base)(
        name="it",
        description="",
        days=1,
        transactions=None,
        logins=base.logins if stream == "logins" else None,
        sensors=base.sensors if stream == "sensor_readings" else None,
        clicks=base.clicks if stream == "clickstream" else None,
    )
    records = [r for r in world.records(seed=4) if r.topic == STREAMS[stream].input_topic]
    start = records[0].event.event_time
    return [r for r in records if (r.event.event_time - start).total_seconds() < HOURS * 3600]


@pytest.mark.parametrize("stream", ["logins", "sensor_readings", "clickstream"])
def test_stream_features_online_equal_offline(
    stack_settings: Settings, stream: str, tmp_path: Path
) -> None:
    s = STREAMS[stream]
    ep = endpoints(stack_settings)
    url = f"{ep.redis_url.rsplit('/', 1)[0]}/{REDIS_DB}"
    r = redis.Redis.from_url(url)
    r.flushdb()
    prefix = f"it-{uuid.uuid4().hex[:8]}."
    create_topics(
        make_admin(stack_settings),
        [TopicSpec(prefix + t, 3, 1) for t in (s.input_topic, s.feature_topic)]
        + [TopicSpec(dlq_topic(prefix + s.input_topic), 1, 1)],
    )
    records = _world(stream)
    assert len(records) > 150
    env = {**os.environ, "KAFKA_BOOTSTRAP": ep.kafka_bootstrap, "REDIS_URL": url}
    env.pop("STREAMSCORE_METRICS_PORT", None)
    log = tmp_path / "processor.log"
    cmd = [
        sys.executable,
        "-m",
        "streamscore.services.cli",
        "processor",
        "--stream",
        stream,
        "--topic-prefix",
        prefix,
    ]
    proc = subprocess.Popen(cmd, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    try:
        time.sleep(3)  # let the group form, so the replay below is consumed as it comes
        producer = make_producer(stack_settings, client_id="it-streams")
        publish(records, producer, topic_prefix=prefix, speedup=SPEEDUP, progress=lambda _: None)
        res = run_verify(stack_settings, stream, topic_prefix=prefix, idle_s=8.0)
        assert proc.poll() is None, log.read_text()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
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
