"""How many bytes of Redis one pending event costs in the joiner's layout (FAULTS L5).

``streamscore joiner --stream S --memory-probe N`` (and the memory test):

1. In a scratch namespace, feed ``N`` synthetic scored events of the stream's
   real shape (its model features, its entity keys, ids like the simulator's,
   5% missing values, float32 values as the scorer logs them) through the
   joiner's own state machine and Redis writes, in batches, all pending.
2. Measure the namespace two ways: the sum of ``MEMORY USAGE`` over its keys
   (exact for these keys, blind to other clients) and the server's
   ``used_memory`` delta (includes allocator and dict growth, noisy when other
   clients write meanwhile).
3. Extrapolate linearly to 10 million pending events, delete the namespace.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import redis

from streamscore.libs.contracts.scored import ScoredEvent
from streamscore.libs.features.definitions import feature_schema_hash, model_features
from streamscore.libs.features.training_rows import key_columns
from streamscore.libs.labels.layout import JoinKeys
from streamscore.libs.labels.machine import JoinMachine
from streamscore.libs.labels.records import context_of, record_of
from streamscore.libs.labels.spec import DAY_US, JoinSpec
from streamscore.services.join_state import RedisJoinState

TEN_MILLION = 10_000_000


@dataclass(frozen=True)
class MemoryProbe:
    """What one probe measured."""

    stream: str
    events: int
    features: int
    key_bytes: int
    memory_usage_bytes: int
    used_memory_delta_bytes: int
    bytes_per_event: float
    bytes_per_event_used_memory: float
    extrapolated_10m_gib: float
    keys: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _events(stream: str, n: int, seed: int) -> list[ScoredEvent]:
    rng = random.Random(seed)
    names = model_features(stream)
    keys = key_columns(stream)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    h = feature_schema_hash(stream)
    vals = np.random.default_rng(seed).lognormal(3, 1, size=(n, len(names))).astype(np.float32)
    out = []
    for i in range(n):
        row: list[float | None] = [None if rng.random() < 0.05 else float(v) for v in vals[i]]
        t = t0 + timedelta(seconds=i * 0.5)
        out.append(
            ScoredEvent(
                event_id=f"tx-{seed}-{i:010d}",
                event_time=t,
                stream=stream,
                keys={k: f"{k[0].upper()}{rng.randrange(10**7):07d}" for k in keys},
                feature_names_hash=h,
                values=row,
                model_version="tx-fraud-2026.11-1",
                policy_version=f"{stream}-2026.11-1",
                score=float(np.float32(rng.random())),  # a model's float32 output
                decision="approve",
                policy_path="model",
                degraded=None,
                feature_freshness={},
                decided_at=t,
            )
        )
    return out


def _used_memory(client: redis.Redis) -> int:
    info: dict[str, Any] = client.info("memory")  # type: ignore[assignment]
    return int(info["used_memory"])


def probe(
    client: redis.Redis, stream: str, n: int, *, batch: int = 2000, seed: int = 7
) -> MemoryProbe:
    """Steps 1-3 of the module doc."""
    keys = JoinKeys(f"memprobe-{uuid.uuid4().hex[:8]}-", stream)
    state = RedisJoinState(client, keys, ttl_s=3600)
    state.claim()
    machine = JoinMachine(JoinSpec(3650 * DAY_US, DAY_US, DAY_US))
    events = _events(stream, n, seed)
    try:
        before = _used_memory(client)
        for i in range(0, n, batch):
            chunk = events[i : i + batch]
            view = state.view([e.event_id for e in chunk], [e.event_id for e in chunk])
            for ev in chunk:
                machine.scored(view, ev.event_id, record_of(ev, state.intern(context_of(ev))))
            state.load_due(view, machine.targets(view.meta))
            machine.advance(view)
            state.commit(view, None)
        after = _used_memory(client)
        assert state.meta.pending == n, state.meta
        usage = 0
        n_keys = 0
        for key in client.scan_iter(match=keys.pattern(), count=1000):
            usage += int(client.memory_usage(key, samples=0) or 0)  # type: ignore[arg-type]
            n_keys += 1
        per_event = usage / n
        return MemoryProbe(
            stream=stream,
            events=n,
            features=len(model_features(stream)),
            key_bytes=sum(len(e.event_id) for e in events) // n,
            memory_usage_bytes=usage,
            used_memory_delta_bytes=after - before,
            bytes_per_event=round(per_event, 1),
            bytes_per_event_used_memory=round((after - before) / n, 1),
            extrapolated_10m_gib=round(per_event * TEN_MILLION / 2**30, 2),
            keys=n_keys,
        )
    finally:
        state.delete_all()
