"""Poison on every input topic of a stream, then a DLQ replay after a fix (FAULTS P1, P2, P6).

The fused pipeline of transactions (events and chargebacks) and of sensor
readings runs while valid records are interleaved with poison: random bytes,
truncated JSON, a missing field, a wrong type, a bare ``NaN``, an unknown
field, a 1.5 MiB payload, a sensor reading of 1e300, transactions dated 2099
and 1970 (of customers whose genuine events follow: the 2099 one, merged, would
have moved their windows' watermark and dropped every later event as late).
Every poison record must
land in ``dlq.<its topic>`` with its reason and its origin, the partitions keep
flowing (every valid event is decided), and nothing else is refused.

Then the fix story: the transactions pipeline ran with a message limit too low
(``STREAMSCORE_MAX_MESSAGE_BYTES=1024``), so valid events padded with JSON
whitespace to 2 KB were refused as ``oversize``. After a restart with the
default limit, ``streamscore dlq replay --reason oversize`` sends exactly those
back to ``events.transactions`` and they are decided; the other dead letters
stay where they are.

The report (``tests/fault_report.py``) counts the valid events of both streams
against their decisions; the fault is the first run (poison and the low limit)
until the fixed pipeline is up and the replay starts. Every event is published
before the pipelines start, so latency measures that backlog (the padded
events' until their replay) and the figure of the fix is its first decision.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections import Counter
from pathlib import Path

import msgspec
import pytest

from streamscore.libs.config import Settings
from streamscore.libs.contracts.codec import encode
from streamscore.libs.contracts.dlq import parse_dlq_headers
from streamscore.libs.simulator.scenario import get
from streamscore.libs.topics import STREAMS, TopicSpec, dlq_topic
from streamscore.services.clients import endpoints, make_admin, make_producer
from streamscore.services.dlq_replay import replay_dlq
from streamscore.services.topics_admin import create_topics
from tests.fault_report import decision, fault_report, input_id, outs_from, sent_from
from tests.processor_runs import create_stream_topics, read_all, redis_db_url, start_cli, stop

pytestmark = [pytest.mark.integration, pytest.mark.fault]
TX, SN = STREAMS["transactions"], STREAMS["sensor_readings"]
REDIS_DB = 6


class _Id(msgspec.Struct):
    event_id: str


def _poison(valid: bytes, rng: random.Random, big: str) -> list[tuple[bytes, str]]:
    """Bad variants of one valid JSON object, each with the DLQ reason it must get
    (``big``: the reason of a 900 KiB record under the consuming service's limit)."""
    obj = json.loads(valid)
    return [
        (rng.randbytes(200), "not_utf8"),
        (valid[: len(valid) // 2], "not_json"),
        (json.dumps({k: v for k, v in obj.items() if k != "event_id"}).encode(), "missing_field"),
        (json.dumps({**obj, "event_id": 12}).encode(), "wrong_type"),
        (b'{"event_id": NaN}', "not_json"),
        (json.dumps({**obj, "coupon": "x"}).encode(), "extra_field"),
        (json.dumps({**obj, "pad": "x" * (900 * 1024)}).encode(), big),
    ]


def test_poison_lands_in_the_dlq_and_a_fixed_cause_replays(
    stack_settings: Settings, transaction_model_dir: Path, tmp_path: Path
) -> None:
    ep = endpoints(stack_settings)
    url = redis_db_url(ep.redis_url, REDIS_DB)
    prefix = f"poison-{uuid.uuid4().hex[:6]}."
    for stream in ("transactions", "sensor_readings"):
        create_stream_topics(stack_settings, stream, prefix)
        s = STREAMS[stream]
        create_topics(
            make_admin(stack_settings),
            [TopicSpec(prefix + t, 3, 1) for t in (s.decision_topic, s.scored_log_topic)],
        )
    records = list(get("small").only("transactions", "sensor_readings").with_days(1).records(3))
    tx = [r.event for r in records if r.topic == TX.input_topic][:300]
    sn = [r.event for r in records if r.topic == SN.input_topic][:300]
    rng = random.Random(0)
    expected: dict[str, Counter[str]] = {}
    producer = make_producer(stack_settings, client_id="it-poison")

    def send(topic: str, value: bytes, key: bytes = b"k") -> None:
        producer.send(prefix + topic, value, key=key)

    padded = tx[:20]  # refused as oversize under the low limit, replayed after the fix
    for i, ev in enumerate(tx):
        body = encode(ev)
        if ev in padded:
            body = body[:-1] + b" " * 2048 + b"}"
            expected.setdefault(TX.input_topic, Counter())["oversize"] += 1
        send(TX.input_topic, body, ev.customer_id.encode())  # type: ignore[attr-defined]
        if i % 50 == 0:
            for value, reason in _poison(encode(ev), rng, "oversize"):
                send(TX.input_topic, value)
                expected[TX.input_topic][reason] += 1
            for year in (2099, 1970):
                dated = msgspec.structs.replace(
                    ev,
                    event_id=f"{ev.event_id}-{year}",
                    event_time=ev.event_time.replace(year=year),
                )
                send(TX.input_topic, encode(dated), ev.customer_id.encode())  # type: ignore[attr-defined]
                expected[TX.input_topic]["semantic"] += 1
    for i, ev in enumerate(sn):
        send(SN.input_topic, encode(ev), ev.machine_id.encode())  # type: ignore[attr-defined]
        if i % 100 == 0:
            for value, reason in _poison(encode(ev), rng, "extra_field"):
                send(SN.input_topic, value)
                expected.setdefault(SN.input_topic, Counter())[reason] += 1
            big = msgspec.structs.replace(ev, event_id=f"{ev.event_id}-big", value=1e300)
            send(SN.input_topic, encode(big))
            expected[SN.input_topic]["semantic"] += 1
    for value, reason in _poison(b'{"event_id": "cb-x", "customer_id": "C"}', rng, "")[:3]:
        send(TX.label_topic, value)
        expected.setdefault(TX.label_topic, Counter())[reason] += 1
    assert producer.flush(60) == 0 and producer.failed_total == 0

    log = tmp_path / "pipelines.log"
    low = {"STREAMSCORE_MAX_MESSAGE_BYTES": "1024"}
    args_tx = ["pipeline", "--stream", "transactions", "--topic-prefix", prefix]
    args_tx += ["--model", str(transaction_model_dir)]
    args_sn = ["pipeline", "--stream", "sensor_readings", "--topic-prefix", prefix]
    started = time.time()
    procs = [
        start_cli(args_tx, bootstrap=ep.kafka_bootstrap, redis_url=url, log=log, env=low),
        start_cli(args_sn, bootstrap=ep.kafka_bootstrap, redis_url=url, log=log),
    ]
    try:
        n_tx = len(tx) - len(padded)
        tx_dec = read_all(ep.kafka_bootstrap, prefix + TX.decision_topic, n_tx, timeout_s=120)
        sn_dec = read_all(ep.kafka_bootstrap, prefix + SN.decision_topic, len(sn), timeout_s=120)
    finally:
        stop(procs[0])
    # Every valid event decided (the partitions kept flowing past the poison).
    decided = {msgspec.json.decode(m.value(), type=_Id).event_id for m in tx_dec}
    assert decided == {e.event_id for e in tx if e not in padded}, log.read_text()[-2000:]
    assert {msgspec.json.decode(m.value(), type=_Id).event_id for m in sn_dec} == {
        e.event_id for e in sn
    }
    # Every poison record in its DLQ, with its reason and origin; nothing else.
    for topic, want in expected.items():
        dead = read_all(ep.kafka_bootstrap, dlq_topic(prefix + topic), sum(want.values()), 60)
        headers = [parse_dlq_headers(m.headers() or []) for m in dead]
        assert Counter(h.reason for h in headers) == want, topic
        assert {h.source_topic for h in headers} == {prefix + topic}
        assert all(h.source_offset >= 0 and h.service == "pipeline" for h in headers)
        if topic == TX.input_topic:  # the dated ones, with the rule that refused them
            rules = Counter(h.detail.split(":")[0] for h in headers if h.reason == "semantic")
            assert rules == {"event_time_future": 6, "event_time_past": 6}, rules
            assert {h.field for h in headers if h.reason == "semantic"} == {"$.event_time"}

    # The fix: the default limit; then replay only the oversize dead letters.
    procs[0] = start_cli(args_tx, bootstrap=ep.kafka_bootstrap, redis_url=url, log=log)
    try:
        time.sleep(3)
        fixed = time.time()
        stats = replay_dlq(
            stack_settings.model_copy(update={"redis_url": url}),
            dlq_topic(prefix + TX.input_topic),
            reasons={"oversize"},
        )
        # The padded events and the 900 KiB poison (refused again, now as extra_field).
        assert stats.replayed == Counter({"oversize": expected[TX.input_topic]["oversize"]})
        after = read_all(ep.kafka_bootstrap, prefix + TX.decision_topic, len(tx), timeout_s=120)
    finally:
        for p in procs:
            stop(p)
    decided = {msgspec.json.decode(m.value(), type=_Id).event_id for m in after}
    assert {e.event_id for e in padded} <= decided
    inputs = []  # the valid events, timed by their first record (a replay re-publishes)
    replayed = sum(stats.replayed.values())
    # The records of each input topic: valid events, poison, and (transactions) the replayed.
    for s, events, resent in ((TX, tx, replayed - len(padded)), (SN, sn, 0)):
        n = len(events) + sum(expected[s.input_topic].values()) + resent
        read = read_all(ep.kafka_bootstrap, prefix + s.input_topic, n, timeout_s=60)
        inputs += sent_from(read, input_id, ids=[e.event_id for e in events])
    report = fault_report(
        "P1/P2/P6 poison on every input topic, DLQ replay after a fix",
        inputs,
        outs_from([*after, *sn_dec], decision),
        [(started, fixed)],
        note=(
            f"dead letters {sum(sum(c.values()) for c in expected.values())} "
            f"(each with its reason), replayed {replayed}"
        ),
    )
    print(f"\n{report}")
    assert report.lost == 0 and report.conflicting == 0
    # A second run finds nothing new to replay (its offsets were committed).
    again = replay_dlq(stack_settings, dlq_topic(prefix + TX.input_topic), reasons={"oversize"})
    assert sum(again.replayed.values()) == 0
