"""Producers whose clocks disagree (FAULTS F3): event-time windows follow the documented rule.

Logins are published by seven "producer services", each with its own clock
error (every account is served by one of them, by a stable hash): its events
carry event times shifted by that error. The real feature processor computes
the windows; ``streamscore features verify`` recomputes every event offline
from the topics with the same computation and compares. The input topic has
one partition, so the processor sees the events in publish order and only the
skew moves event times (with several partitions, a replay compressed ~1000×
turns a partition consumed 0.6 s behind the others into 10 minutes of event
time: lateness of the test's clock, not of the producers').

The rule (``libs/features/compute.py``): an event more than the grace period
(10 min) behind its entity's newest event is late — counted, not merged, its
features read at the oldest exact time. With ±5 min of skew no event can be
that late, so nothing is counted late and the windows are the offline ones;
with ±20 min events of shared entities (an IP used by accounts of two
producers) do fall behind and are counted late — exactly as many as a plain
reading of the rule over the published sequence finds — never silently
merged, while each account's own windows (one producer, one clock) stay exact.
The report (``tests/fault_report.py``) counts feature records against the
inputs; the skew lasts the whole publishing, so every event is "during" it.
"""

from __future__ import annotations

import hashlib
import socket
import time
import uuid
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
import redis

from streamscore.libs.config import Settings
from streamscore.libs.features.definitions import groups
from streamscore.libs.simulator.scenario import get
from streamscore.libs.topics import STREAMS
from streamscore.services.clients import endpoints, make_producer
from streamscore.services.feature_verify import run_verify
from streamscore.services.sim_producer import publish
from tests.fault_report import fault_report, feature_id, input_id, outs_from, sent_from
from tests.processor_runs import create_stream_topics, read_all, redis_db_url, start_cli, stop

pytestmark = [pytest.mark.integration, pytest.mark.fault]
STREAM = "logins"
REDIS_DB = 4
HOURS = 12
PUBLISH_S = 30.0
GRACE_S = 600.0  # libs/features/plan.py GRACE_S
#: One clock per producer service, as a fraction of the scenario's maximum skew.
CLOCKS = (-1.0, -2 / 3, -1 / 3, 0.0, 1 / 3, 2 / 3, 1.0)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _skewed(max_skew_s: float) -> list[Any]:
    world = get("small").only(STREAM).with_days(1)
    key_field = STREAMS[STREAM].key_field
    records = [r for r in world.records(seed=4) if r.topic == STREAMS[STREAM].input_topic]
    start = records[0].event.event_time
    out = []
    for r in records:
        if (r.event.event_time - start).total_seconds() >= HOURS * 3600:
            break
        key = str(getattr(r.event, key_field)).encode()
        clock = CLOCKS[hashlib.blake2b(key, digest_size=4).digest()[0] % len(CLOCKS)]
        shifted = r.event.event_time + timedelta(seconds=clock * max_skew_s)
        out.append(replace(r, event=msgspec.structs.replace(r.event, event_time=shifted)))
    return out  # published in true order: each producer's own events stay in order


def _expected_late(records: list[Any]) -> dict[str, int]:
    """The rule read plainly: late when more than grace behind the entity's newest event."""
    out = {"account_logins": 0, "ip_logins": 0}
    newest: dict[tuple[str, str], float] = {}
    for r in records:
        t = r.event.event_time.timestamp()
        for group, key in (("account_logins", r.event.account_id), ("ip_logins", r.event.ip)):
            seen = newest.get((group, key))
            if seen is not None and t < seen - GRACE_S:
                out[group] += 1
            newest[(group, key)] = max(t, seen if seen is not None else t)
    return out


def _late(metrics: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for line in metrics.splitlines():
        if line.startswith("streamscore_feature_late_events_total{"):
            group = line.split('group="', 1)[1].split('"', 1)[0]
            out[group] = float(line.rsplit(" ", 1)[1])
    return out


@pytest.mark.parametrize("max_skew_s", [300.0, 1200.0], ids=["5min", "20min"])
def test_producer_clock_skew(stack_settings: Settings, max_skew_s: float, tmp_path: Path) -> None:
    ep = endpoints(stack_settings)
    url = redis_db_url(ep.redis_url, REDIS_DB)
    r = redis.Redis.from_url(url)
    r.flushdb()
    prefix = f"skew-{uuid.uuid4().hex[:8]}."
    create_stream_topics(stack_settings, STREAM, prefix, labels=False, partitions=1)
    records = _skewed(max_skew_s)
    expected = _expected_late(records)
    assert len(records) > 150
    port = _free_port()
    log = tmp_path / "processor.log"
    proc = start_cli(
        ["processor", "--stream", STREAM, "--topic-prefix", prefix],
        bootstrap=ep.kafka_bootstrap,
        redis_url=url,
        log=log,
        env={"STREAMSCORE_METRICS_PORT": str(port)},
    )
    try:
        time.sleep(3)  # let the group form, so the records are consumed as they come
        producer = make_producer(stack_settings, client_id="it-skew")
        rate = len(records) / PUBLISH_S
        started = time.time()
        publish(records, producer, rate=rate, topic_prefix=prefix, progress=lambda _: None)
        skewed = (started, time.time())  # every event carries its producer's skew
        res = run_verify(stack_settings, STREAM, topic_prefix=prefix, idle_s=8.0)
        late = _late(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5.0).text)
        assert proc.poll() is None, log.read_text()[-3000:]
    finally:
        stop(proc)
        r.flushdb()
    s = STREAMS[STREAM]
    ids = [r.event.event_id for r in records]
    inputs = read_all(ep.kafka_bootstrap, prefix + s.input_topic, len(ids))
    features = read_all(ep.kafka_bootstrap, prefix + s.feature_topic, len(ids))
    report = fault_report(
        f"F3 producer clocks ±{max_skew_s / 60:.0f} min",
        sent_from(inputs, input_id, ids=ids),
        outs_from(features, lambda v: (feature_id(v), v)),
        [skewed],
        output_name="feature record",
        note=f"late events {late} (rule read plainly: {expected})",
    )
    print(f"\n{report}")
    a = res.agreement
    ratios = {f: round(a.ratio(f), 4) for g in groups(STREAM) for f in g.feature_names}
    print(
        f"\nF3 clock skew ±{max_skew_s / 60:.0f} min, {len(records)} logins: late events "
        f"{late} (rule read plainly: {expected}), mismatch ratio per feature vs offline {ratios}"
    )
    assert report.lost == 0 and report.conflicting == 0
    assert a.compared == len(records), log.read_text()[-3000:]
    assert all(n == 0 for n in a.mismatches.values()), ratios  # the windows are the offline ones
    assert {g: int(late.get(g, 0.0)) for g in expected} == expected  # late: counted, as the rule
    assert expected["account_logins"] == 0  # one producer's clock per account
    if max_skew_s <= GRACE_S / 2:  # every skew within grace: nothing late at all
        assert expected["ip_logins"] == 0
    else:  # beyond: events of shared IPs fall behind, and are counted, not merged
        assert expected["ip_logins"] > 0
