"""The online store on a local three-node Redis Cluster, against single-node Redis.

A Redis Cluster of three ``redis-server`` primaries is started for this module
(:class:`~streamscore.services.stack.redis_cluster.LocalRedisCluster`: free
loopback ports, temp folders, ``redis-cli --cluster create``, ``cluster_state:ok``)
and stopped after it. On real Kafka, the same week of transactions and
chargebacks goes through:

* ``streamscore processor`` on single-node Redis (the reference) and on the
  cluster: every event's feature values and statuses agree; the entities'
  keys spread over all three nodes, each entity's keys on one node; online
  reads (sync and asyncio clients) of every entity agree; a replay from the
  beginning re-emits byte-identical records and changes no state hash;
* ``streamscore pipeline`` (fused) on the cluster: every event decided exactly
  once, on features equal to the single-node ones;
* the capacity ledger, the label joiner's state and the monitor's state work
  on the cluster (their multi-key calls stay in one slot);
* a batch that another writer overtakes is recomputed: before its check,
  exactly as on one server; between check and write (one slot committed,
  another refused), every state still counts each event once.
"""

from __future__ import annotations

import asyncio
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import msgspec
import numpy as np
import pytest
import redis
import redis.asyncio
from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, KafkaException, TopicPartition
from redis.cluster import RedisCluster

from streamscore.libs.config import Settings
from streamscore.libs.contracts.codec import decode, encode
from streamscore.libs.contracts.events import Transaction
from streamscore.libs.contracts.features import TransactionFeatures
from streamscore.libs.contracts.labels import Chargeback
from streamscore.libs.features.definitions import groups, model_features
from streamscore.libs.features.online_layout import output_key, state_key, vector_key
from streamscore.libs.labels.layout import JoinKeys
from streamscore.libs.labels.machine import JoinMachine
from streamscore.libs.labels.stores import DictStore
from streamscore.libs.policy.capacity import Candidate
from streamscore.libs.simulator.records import SimRecord
from streamscore.libs.simulator.scenario import get
from streamscore.libs.topics import STREAMS
from streamscore.services.capacity import RedisCapacity
from streamscore.services.clients import (
    endpoints,
    is_cluster,
    make_admin,
    make_async_redis,
    make_producer,
    make_redis,
)
from streamscore.services.cluster_calls import get_many, get_many_async
from streamscore.services.feature_processor import FeatureProcessor, InMessage, decode_state
from streamscore.services.feature_state import FeatureStateStore, Raw, Writes
from streamscore.services.join_state import RedisJoinState
from streamscore.services.model_store import ModelStore
from streamscore.services.monitor_state import MonitorStore
from streamscore.services.online_features import AsyncOnlineFeatureClient, OnlineFeatureClient
from streamscore.services.policy_store import PolicyStore
from streamscore.services.scorer import default_policy
from streamscore.services.sim_producer import publish
from streamscore.services.stack.redis_cluster import LocalRedisCluster
from tests.integration.test_join_state import run_redis
from tests.label_join_cases import DEFAULT_SPEC, batches, scenario
from tests.model_folders import trained
from tests.processor_runs import (
    create_stream_topics,
    read_all,
    redis_db_url,
    start_cli,
    start_processor,
    stop,
)
from tests.unit.labels.test_machine import rows, run

pytestmark = pytest.mark.integration
S = STREAMS["transactions"]
#: The single-node reference's database (no other test uses it).
REDIS_DB = 14
SPEEDUP = 50_000
GROUPS = groups("transactions")


def _quiet(_: str) -> None:
    pass


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRedisCluster]:
    """A fresh three-node Redis Cluster for this module."""
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        pytest.skip("redis-server (and redis-cli) not installed")
    with LocalRedisCluster(tmp_path_factory.mktemp("redis-cluster"), n=3) as c:
        yield c


def _cluster_client(c: LocalRedisCluster) -> RedisCluster:
    return RedisCluster(host="127.0.0.1", port=c.ports[0])


@dataclass(frozen=True)
class World:
    events: list[SimRecord]
    labels: list[SimRecord]


@pytest.fixture(scope="module")
def world() -> World:
    records = list(get("small").only("transactions").with_days(7).records(seed=9))
    return World(
        [x for x in records if isinstance(x.event, Transaction)],
        [x for x in records if isinstance(x.event, Chargeback)],
    )


def _committed(bootstrap: str, group: str, topic: str) -> int:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        tps = c.committed([TopicPartition(topic, p) for p in range(3)], timeout=10)
    except KafkaException:  # coordinator still loading: not yet
        return 0
    finally:
        c.close()
    return sum(max(tp.offset, 0) for tp in tps)


def _features(messages: list[Any]) -> dict[str, TransactionFeatures]:
    out: dict[str, TransactionFeatures] = {}
    for m in messages:
        fv = decode(TransactionFeatures, m.value(), max_bytes=1 << 21)
        out.setdefault(fv.event.event_id, fv)
    return out


def _run_processor(
    settings: Settings, w: World, redis_url: str, prefix: str, log: Path
) -> list[Any]:
    """Labels (consumed first), then the events, through ``streamscore processor``."""
    bootstrap = endpoints(settings).kafka_bootstrap
    create_stream_topics(settings, "transactions", prefix)
    producer = make_producer(settings, client_id="it-cluster")
    proc = start_processor(
        "transactions", prefix, bootstrap=bootstrap, redis_url=redis_url, log=log
    )
    try:
        publish(w.labels, producer, topic_prefix=prefix, progress=_quiet)
        group = f"{prefix}streamscore-features-transactions"
        deadline = time.monotonic() + 120
        while _committed(bootstrap, group, prefix + S.label_topic) < len(w.labels):
            assert time.monotonic() < deadline and proc.poll() is None, log.read_text()[-3000:]
            time.sleep(0.5)
        publish(w.events, producer, topic_prefix=prefix, speedup=SPEEDUP, progress=_quiet)
        got = read_all(bootstrap, prefix + S.feature_topic, len(w.events))
        assert proc.poll() is None, log.read_text()[-3000:]
    finally:
        stop(proc)
    return got


@dataclass(frozen=True)
class Reference:
    features: dict[str, TransactionFeatures]
    redis_url: str


@pytest.fixture(scope="module")
def single_node(
    stack_settings: Settings, world: World, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Reference]:
    """The week through the processor on single-node Redis (kept until the module ends)."""
    url = redis_db_url(endpoints(stack_settings).redis_url, REDIS_DB)
    r = redis.Redis.from_url(url)
    r.flushdb()
    log = tmp_path_factory.mktemp("single") / "processor.log"
    got = _run_processor(stack_settings, world, url, f"rc1-{uuid.uuid4().hex[:8]}.", log)
    yield Reference(_features(got), url)
    r.flushdb()


def _assert_same_features(
    got: dict[str, TransactionFeatures], want: dict[str, TransactionFeatures]
) -> None:
    assert set(got) == set(want)
    bad, statuses = 0, 0
    for eid, fv in got.items():
        ref = want[eid]
        statuses += fv.feature_statuses != ref.feature_statuses
        for n in model_features("transactions"):
            a, b = fv.values[n], ref.values[n]
            if (a is None) != (b is None) or (
                a is not None and not np.isclose(a, b, rtol=1e-6, atol=1e-9)  # type: ignore[arg-type]
            ):
                bad += 1
    assert (statuses, bad) == (0, 0)


def _state(rc: RedisCluster) -> dict[bytes, Any]:
    return {k: rc.hgetall(k) for k in rc.scan_iter(match="ss:w:*", count=1000)}


def test_processor_on_cluster_equals_single_node(
    stack_settings: Settings,
    cluster: LocalRedisCluster,
    world: World,
    single_node: Reference,
    tmp_path: Path,
) -> None:
    rc = _cluster_client(cluster)
    rc.flushall(target_nodes=RedisCluster.PRIMARIES)
    prefix = f"rc2-{uuid.uuid4().hex[:8]}."
    got = _run_processor(stack_settings, world, cluster.url, prefix, tmp_path / "p1.log")
    online = _features(got)
    assert len(got) == len(world.events) == len(online)
    _assert_same_features(online, single_node.features)

    # Every entity's keys on one node, the entities spread over all three.
    per_node: dict[str, int] = {}
    for node in rc.get_primaries():  # type: ignore[no-untyped-call]
        direct = redis.Redis(host=node.host, port=node.port)
        per_node[node.name] = sum(1 for _ in direct.scan_iter(match="ss:w:*", count=1000))
    n_keys = sum(per_node.values())
    assert len(per_node) == 3 and all(n > n_keys / 5 for n in per_node.values()), per_node
    txs = [cast(Transaction, e.event) for e in world.events]
    for tx in txs[:50]:
        for g, eid in ((GROUPS[0], tx.customer_id), (GROUPS[1], tx.terminal_id)):
            node = rc.get_node_from_key(state_key(g, eid))  # type: ignore[no-untyped-call]
            direct = redis.Redis(host=node.host, port=node.port)
            assert direct.exists(state_key(g, eid), vector_key(g, eid)) == 2

    # Online reads of every entity: the cluster's equal single-node Redis's.
    rows = [{"customer_id": tx.customer_id, "terminal_id": tx.terminal_id} for tx in txs]
    now_s = max(tx.event_time for tx in txs).timestamp()
    cluster_settings = Settings(redis_url=cluster.url, kafka_bootstrap="unused:9092")
    on_cluster = make_redis(cluster_settings, timeout_s=5.0)
    assert is_cluster(on_cluster)
    ref = OnlineFeatureClient(redis.Redis.from_url(single_node.redis_url), GROUPS)
    a = OnlineFeatureClient(on_cluster, GROUPS).read_rows(rows, now_s=now_s)
    b = ref.read_rows(rows, now_s=now_s)
    np.testing.assert_array_equal(a.values, b.values)
    assert a.statuses == b.statuses and a.error_count == 0

    async def read_async() -> Any:
        client = make_async_redis(cluster_settings, timeout_s=5.0)
        try:
            return await AsyncOnlineFeatureClient(client, GROUPS).read_rows(rows, now_s=now_s)
        finally:
            await client.aclose()

    c = asyncio.run(read_async())
    np.testing.assert_array_equal(c.values, b.values)
    assert c.statuses == b.statuses

    # Replay from the beginning: byte-identical records, no state hash changed.
    before = _state(rc)
    assert len(before) == n_keys
    group = f"{prefix}streamscore-features-transactions"
    parts = [
        TopicPartition(t, p, 0)
        for t in (prefix + S.input_topic, prefix + S.label_topic)
        for p in range(3)
    ]
    admin = make_admin(stack_settings)
    admin.alter_consumer_group_offsets([ConsumerGroupTopicPartitions(group, parts)])[group].result()
    bootstrap = endpoints(stack_settings).kafka_bootstrap
    log2 = tmp_path / "p2.log"
    proc = start_processor(
        "transactions", prefix, bootstrap=bootstrap, redis_url=cluster.url, log=log2
    )
    try:
        again = read_all(bootstrap, prefix + S.feature_topic, 2 * len(world.events))
    finally:
        stop(proc)
    assert len(again) == 2 * len(world.events), log2.read_text()[-3000:]
    firsts = {m.value() for m in got}
    assert all(m.value() in firsts for m in again), "replayed records are byte-identical"
    assert _state(rc) == before


class _Decision:
    def __init__(self, raw: bytes) -> None:
        import msgspec

        d = msgspec.json.decode(raw)
        self.event_id: str = d["event_id"]
        self.outcome = (d["decision"], d["score"], d["model_version"])


def test_pipeline_on_cluster_decides_once_on_single_node_features(
    stack_settings: Settings,
    cluster: LocalRedisCluster,
    world: World,
    single_node: Reference,
    transaction_model_dir: Path,
    tmp_path: Path,
) -> None:
    rc = _cluster_client(cluster)
    rc.flushall(target_nodes=RedisCluster.PRIMARIES)
    prefix = f"rc3-{uuid.uuid4().hex[:8]}."
    bootstrap = endpoints(stack_settings).kafka_bootstrap
    create_stream_topics(stack_settings, "transactions", prefix, outputs=True)
    producer = make_producer(stack_settings, client_id="it-cluster-pipeline")
    args = ["pipeline", "--stream", "transactions", "--topic-prefix", prefix]
    args += ["--model", str(transaction_model_dir)]
    log = tmp_path / "pipeline.log"
    publish(world.labels, producer, topic_prefix=prefix, progress=_quiet)
    proc = start_cli(args, bootstrap=bootstrap, redis_url=cluster.url, log=log)
    try:
        group = f"{prefix}streamscore-pipeline-transactions"
        deadline = time.monotonic() + 120
        while _committed(bootstrap, group, prefix + S.label_topic) < len(world.labels):
            assert time.monotonic() < deadline and proc.poll() is None, log.read_text()[-3000:]
            time.sleep(0.5)
        publish(world.events, producer, topic_prefix=prefix, speedup=SPEEDUP, progress=_quiet)
        decided = read_all(bootstrap, prefix + S.decision_topic, len(world.events), timeout_s=180)
        features = read_all(bootstrap, prefix + S.feature_topic, len(world.events), timeout_s=30)
        assert proc.poll() is None, log.read_text()[-3000:]
    finally:
        stop(proc)
    by_id: dict[str, set[tuple[Any, ...]]] = {}
    for m in decided:
        d = _Decision(m.value())
        by_id.setdefault(d.event_id, set()).add(d.outcome)
    assert set(by_id) == {e.event.event_id for e in world.events}, log.read_text()[-3000:]
    assert len(decided) == len(world.events) and all(len(v) == 1 for v in by_id.values())
    _assert_same_features(_features(features), single_node.features)


def test_capacity_joiner_and_monitor_state_on_cluster(
    stack_settings: Settings, cluster: LocalRedisCluster
) -> None:
    rc = _cluster_client(cluster)
    # Capacity: both keys of a day in one slot; the answers are single-node Redis's.
    one = redis.Redis.from_url(redis_db_url(endpoints(stack_settings).redis_url, REDIS_DB))
    ns = f"it-{uuid.uuid4().hex[:6]}"
    caps = [RedisCapacity(c, namespace=ns) for c in (rc, one)]  # type: ignore[arg-type]
    days = {"20261123": [Candidate(f"e{i}", s) for i, s in enumerate([0.9, 0.5, 0.7, 0.95])]}
    later = {"20261123": [Candidate("e9", 0.99), Candidate("e0", 0.9)]}
    answers = [[cap.record("transactions", b, 2) for b in (days, later, days)] for cap in caps]
    assert answers[0] == answers[1] and all(a is not None for a in answers[0])
    assert caps[0].unavailable == 0 and answers[0][0]["20261123"].count == 2  # type: ignore[index]

    # The joiner: one stream's state in one slot, its MULTI/EXEC under WATCH works.
    import random

    rng = random.Random(3)
    sc = scenario(rng, 120)
    batched = batches(rng, sc.inputs, max_size=25)
    state = RedisJoinState(
        rc,  # type: ignore[arg-type]
        JoinKeys(uuid.uuid4().hex[:8] + "-", "transactions", 16),
        ttl_s=600,
    )
    state.claim()
    try:
        got = rows(run_redis(state, JoinMachine(DEFAULT_SPEC), batched))
        assert got == rows(run(JoinMachine(DEFAULT_SPEC), DictStore(), batched))
    finally:
        state.delete_all()

    # The monitor's state: single-key calls.
    store = MonitorStore(rc, "sensor_readings", topic_prefix="it.")  # type: ignore[arg-type]
    store.mark({"psi:score": 1.5})
    assert store.marks() == {"psi:score": 1.5}


def test_cluster_write_is_a_compare_and_set_per_slot(cluster: LocalRedisCluster) -> None:
    """Another writer between a batch's check (C3a) and its write (C3b): that slot refuses,
    the batch recomputes on fresh state, and the other writer's change is kept."""
    mine, shared = "ss:w:{customer_tx:A}", "ss:w:{terminal_tx:B}"
    settings = Settings(redis_url=cluster.url, kafka_bootstrap="unused:9092")
    assert _cluster_client(cluster).keyslot(mine) != _cluster_client(cluster).keyslot(shared)

    def decode_raw(_key: str, raw: Raw) -> Raw:
        return raw

    async def go() -> tuple[int, int, dict[bytes, bytes], dict[bytes, bytes]]:
        client = make_async_redis(settings, timeout_s=5.0)
        a = FeatureStateStore(client, decode_raw)
        b = FeatureStateStore(client, decode_raw)
        seen: list[Raw] = []
        others: list[asyncio.Task[None]] = []

        def other(states: dict[str, Raw], _: Any) -> tuple[Writes, None]:
            return Writes(hashes={shared: ({"b": b"1"}, [], 600)}), None

        async def interleave() -> None:
            await b.transact([shared], [], other)

        def compute(states: dict[str, Raw], _: Any) -> tuple[Writes, int]:
            seen.append(states[shared])
            if len(seen) == 1:  # another process writes the shared entity meanwhile
                others.append(asyncio.get_running_loop().create_task(interleave()))
            put: dict[str, bytes | int] = {"a": str(len(seen)).encode()}
            return Writes(hashes={mine: (put, [], 600), shared: (put, [], 600)}), len(seen)

        async def first_then_other() -> int:
            # The interleaving writer runs before this batch's write (C3).
            orig = a._write_cluster

            async def delayed(*args: Any, **kwargs: Any) -> bool:
                for task in others:
                    await task
                return await orig(*args, **kwargs)

            a._write_cluster = delayed  # type: ignore[method-assign]
            return await a.transact([mine, shared], [], compute)

        attempts = await first_then_other()
        try:
            return (
                attempts,
                a.conflicts,
                await client.hgetall(shared),
                await client.hgetall(mine),
            )
        finally:
            await client.aclose()

    attempts, conflicts, shared_hash, mine_hash = asyncio.run(go())
    assert (attempts, conflicts) == (2, 1)
    # The other writer's field survives, the recomputed batch wrote after it.
    assert shared_hash == {b"b": b"1", b"a": b"2", b"ver": b"2"}
    # Atomic per slot only: the refused attempt's write to the other slot had landed
    # (the processors' window engines make that harmless, see feature_state's doc).
    assert mine_hash == {b"a": b"2", b"ver": b"2"}


@pytest.mark.parametrize("step", ["_check_cluster", "_write_cluster"])
def test_another_writer_meanwhile_counts_each_event_once(
    stack_settings: Settings, cluster: LocalRedisCluster, step: str
) -> None:
    """Batch A (customer CA at terminal T1) is loaded and computed; batch B (customer CB at
    T1) is written by another processor before A's check (C3a) or, rarer, between A's check
    and its write (C3b). Before the check: nothing of A is written, A is recomputed and
    everything equals single-node Redis processing B then A. Between: A's CA slot commits,
    its T1 slot is refused, A is recomputed; the states still equal single-node Redis's."""
    t0 = datetime(2026, 3, 2, 12, tzinfo=UTC)

    def tx(i: int, customer: str, minutes: int) -> InMessage:
        ev = Transaction(
            event_id=f"{customer}-{i}",
            event_time=t0 + timedelta(minutes=minutes),
            customer_id=customer,
            terminal_id="T1",
            amount=10.0 + i,
        )
        return InMessage(S.input_topic, 0, i, customer.encode(), encode(ev), None)

    batch_b = [tx(i, "CB", i) for i in range(5)]
    batch_a = [tx(i, "CA", 10 + i) for i in range(5)]
    now = t0.timestamp() + 3600

    def processor(client: Any) -> FeatureProcessor:
        return FeatureProcessor(
            "transactions", FeatureStateStore(client, decode_state), clock=lambda: now
        )

    async def on_cluster() -> tuple[list[bytes], int]:
        client = make_async_redis(Settings(redis_url=cluster.url, kafka_bootstrap="x:1"))
        pa, pb = processor(client), processor(client)
        orig = getattr(pa.store, step)
        pending = [batch_b]

        async def other_writer_first(*args: Any, **kwargs: Any) -> bool:
            while pending:
                await pb.process(pending.pop())
            return bool(await orig(*args, **kwargs))

        setattr(pa.store, step, other_writer_first)
        try:
            out, _ = await pa.process(batch_a)
            return [r.value for r in out], pa.store.conflicts
        finally:
            await client.aclose()

    async def on_one_server(url: str) -> list[bytes]:
        client = redis.asyncio.Redis.from_url(url)
        p = processor(client)
        try:
            await p.process(batch_b)
            out, _ = await p.process(batch_a)
            return [r.value for r in out]
        finally:
            await client.aclose()

    rc = _cluster_client(cluster)
    rc.flushall(target_nodes=RedisCluster.PRIMARIES)
    # On the reference database, next to the simulated entities (C0..., T0...): own keys only.
    url = redis_db_url(endpoints(stack_settings).redis_url, REDIS_DB)
    one = redis.Redis.from_url(url)
    entities = [(GROUPS[0], "CA"), (GROUPS[0], "CB"), (GROUPS[1], "T1")]
    states = [state_key(g, e) for g, e in entities]
    vectors = [vector_key(g, e) for g, e in entities]
    records = [output_key("transactions", f"{c}-{i}") for c in ("CA", "CB") for i in range(5)]
    one.delete(*states, *vectors, *records)
    try:
        got, conflicts = asyncio.run(on_cluster())
        want = asyncio.run(on_one_server(url))

        def hashes(c: Any) -> list[dict[bytes, bytes]]:
            out = [c.hgetall(k) for k in states]
            for h in out:
                h.pop(b"ver")  # the refused-then-recomputed batch wrote CA twice
            return out

        assert conflicts == 1
        assert all(hashes(rc)) and hashes(rc) == hashes(one)  # each event counted once
        assert rc.mget_nonatomic(vectors) == one.mget(vectors)
        if step == "_check_cluster":  # refused before anything was written
            assert got == want
            return
        # Between check and write: A's recomputation read the customer from a state that
        # already held A's events (the documented cost of per-slot atomicity).
        got_fv = [decode(TransactionFeatures, v, max_bytes=1 << 20) for v in got]
        want_fv = [decode(TransactionFeatures, v, max_bytes=1 << 20) for v in want]
        differ = set()
        for g, w in zip(got_fv, want_fv, strict=True):
            for k, v in g.values.items():
                if v != w.values[k]:
                    differ.add(k)
        # Only the customer's reads of its history before the event (secs since the previous
        # transaction, z-score against the window) differ; counts and sums are exact.
        assert differ <= {"customer_secs_since_last_tx", "customer_amount_zscore_30d"}
    finally:
        one.delete(*states, *vectors, *records)


def test_reads_while_a_slot_moves_fall_back_and_follow_the_redirection(
    cluster: LocalRedisCluster,
) -> None:
    """A slot half-way between two nodes (MIGRATING on its owner, IMPORTING on the target):
    the owner's read script refuses a key it no longer holds, and that node's keys are read
    again by slot with the ASK redirection followed; both clients return every value."""
    rc = _cluster_client(cluster)
    rc.flushall(target_nodes=RedisCluster.PRIMARIES)
    keys = [f"ss:fv:{{customer_tx:R{i}}}" for i in range(60)]
    rc.mset_nonatomic({k: f"v{i}".encode() for i, k in enumerate(keys[:-1])})
    moving = keys[-1]  # absent: after the move it would live on the target
    slot = rc.keyslot(moving)
    owner = rc.get_node_from_key(moving)  # type: ignore[no-untyped-call]
    target = next(n for n in rc.get_primaries() if n.name != owner.name)  # type: ignore[no-untyped-call]
    src = redis.Redis(host=owner.host, port=owner.port)
    dst = redis.Redis(host=target.host, port=target.port)
    src_id, dst_id = src.execute_command("CLUSTER MYID"), dst.execute_command("CLUSTER MYID")
    dst.execute_command("CLUSTER SETSLOT", slot, "IMPORTING", src_id)
    src.execute_command("CLUSTER SETSLOT", slot, "MIGRATING", dst_id)
    settings = Settings(redis_url=cluster.url, kafka_bootstrap="unused:9092")
    want = [f"v{i}".encode() for i in range(59)] + [None]
    try:
        # The owner's script fails on the absent key of the moving slot (a real refusal).
        with pytest.raises(redis.ResponseError, match="non local key"):
            src.eval(
                "#!lua flags=no-writes,allow-cross-slot-keys\nreturn redis.call('GET', ARGV[1])",
                0,
                moving,
            )
        assert get_many(make_redis(settings, timeout_s=5.0), keys) == want  # type: ignore[arg-type]

        async def read_async() -> list[bytes | None]:
            client = make_async_redis(settings, timeout_s=5.0)
            try:
                return await get_many_async(client, keys)  # type: ignore[arg-type]
            finally:
                await client.aclose()

        assert asyncio.run(read_async()) == want
    finally:
        for node in (src, dst):
            node.execute_command("CLUSTER SETSLOT", slot, "STABLE")


def test_policy_store_activates_and_rolls_back_on_cluster(cluster: LocalRedisCluster) -> None:
    store = PolicyStore(cast(redis.Redis, _cluster_client(cluster)), namespace="it-cluster")
    base = default_policy("transactions")
    store.activate(base)  # history push + active set: one transaction, one slot
    newer = msgspec.structs.replace(base, version=f"{base.version}-2")
    store.activate(newer)
    active = store.active("transactions")
    assert active is not None and active.version == newer.version
    assert [p.version for p in store.history("transactions")][:2] == [newer.version, base.version]


def test_model_store_promotes_and_moves_challengers_on_cluster(
    cluster: LocalRedisCluster, tmp_path: Path
) -> None:
    store = ModelStore(cast(redis.Redis, _cluster_client(cluster)), namespace="it-cluster")
    v1, v2 = trained(tmp_path / "v1", "c-1"), trained(tmp_path / "v2", "c-2", seed=1)
    store.promote("transactions", v1, "it", "first")  # history push + active set
    store.set_challenger(
        "transactions", v2, mode="canary", share=0.2, by="it", reason="try"
    )  # challenger + log, one transaction
    challenger = store.challenger("transactions")
    assert challenger is not None and challenger.ref.version == "c-2"
    store.promote_challenger("transactions", by="it", reason="good")  # WATCH + four keys
    active = store.active("transactions")
    assert active is not None and active.version == "c-2"
    assert store.challenger("transactions") is None
    assert [r.version for r in store.history("transactions")][:2] == ["c-2", "c-1"]
