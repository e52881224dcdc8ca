"""``streamscore bench features``: one batch's online features, ours against Feast's.

DESIGN.md §5 budget: reading the online features of a batch of 64 events is
≥ 10× faster than Feast's ``get_online_features`` for the same rows.

1. Write ``entities`` customers and ``entities`` terminals (the two groups of
   the transaction stream, ``customer_tx`` and ``terminal_risk``) with the same
   seeded values (5 % missing) and event times (within the last day) twice
   into the stack's live Redis: as our serving vectors (``ss:fv:{...}``, with a
   one-hour TTL as a safety net) and through Feast's ``write_to_online_store``
   (definitions applied into a temporary registry; Feast keeps its own keys).
   Entity ids carry a per-run random tag, so nothing real is overwritten.
2. Draw ``repeats`` batches of ``rows`` random (customer, terminal) rows.
3. Time each batch, one call per sample (``perf_counter_ns``), after
   ``warmup`` untimed calls; the three readers take turns by blocks of
   ``block`` batches (so a busy machine slows all of them alike):

   - ours: :meth:`OnlineFeatureClient.read` (one ``MGET``, decoded into the
     float32 matrix, statuses and ages);
   - the async twin, :meth:`AsyncOnlineFeatureClient.read`, awaited in a loop;
   - Feast: ``get_online_features(features=<all 15 refs>, entity_rows=...)``
     alone; its ``to_dict()`` runs outside the timer (in Feast's favour).

4. ``agrees``: every timed batch returned identical values on both sides
   (float32 equal; Feast's ``None`` is our NaN).
5. Delete our keys and Feast's keys of this run.

The ratio is Feast's figure over ours (how many times faster we are).
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import platform
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import redis
import redis.asyncio as aioredis

from streamscore.libs.config import Settings
from streamscore.libs.features.definitions import groups
from streamscore.libs.features.feast_repo import PROJECT
from streamscore.libs.features.online_layout import pack, vector_key
from streamscore.libs.features.spec import FeatureGroup
from streamscore.services.clients import endpoints, make_redis
from streamscore.services.feast_store import apply_definitions, feature_store
from streamscore.services.online_features import (
    PRESENT,
    AsyncOnlineFeatureClient,
    OnlineFeatureClient,
)

STREAM = "transactions"
BUDGET_RATIO = 10.0
MISSING_SHARE = 0.05
#: Our keys expire on their own if the bench dies before cleaning up.
SAFETY_TTL_S = 3600
WRITE_CHUNK = 1000

Matrix = npt.NDArray[np.float32]


def parse_args(argv: list[str]) -> dict[str, Any]:
    p = argparse.ArgumentParser(prog="streamscore bench features")
    p.add_argument("--rows", type=int, default=64, help="entity rows per batch")
    p.add_argument("--entities", type=int, default=5000, help="entities written per group")
    p.add_argument("--repeats", type=int, default=2000, help="timed batches per reader")
    p.add_argument("--warmup", type=int, default=50, help="untimed calls per reader first")
    p.add_argument("--block", type=int, default=100, help="batches per reader per turn")
    p.add_argument("--seed", type=int, default=0)
    return vars(p.parse_args(argv))


def _values(rng: np.random.Generator, n: int, group: FeatureGroup) -> Matrix:
    X = rng.gamma(2.0, 3.0, size=(n, len(group.features))).astype(np.float32)
    X[rng.random(X.shape) < MISSING_SHARE] = np.nan
    return X


def _write_ours(
    r: redis.Redis, group: FeatureGroup, ids: Sequence[str], X: Matrix, event_us: Sequence[int]
) -> None:
    written = time.time_ns() // 1000
    for lo in range(0, len(ids), WRITE_CHUNK):
        pipe = r.pipeline(transaction=False)
        for i in range(lo, min(lo + WRITE_CHUNK, len(ids))):
            values: list[float | None] = [None if np.isnan(v) else float(v) for v in X[i]]
            blob = pack(group, values, event_time_us=event_us[i], written_us=written)
            pipe.set(vector_key(group, ids[i]), blob, ex=SAFETY_TTL_S)
        pipe.execute()


def _write_feast(
    store: Any, group: FeatureGroup, ids: Sequence[str], X: Matrix, event_us: Sequence[int]
) -> None:
    inputs: dict[str, list[Any]] = {
        group.entity.join_key: list(ids),
        "event_time": [datetime.fromtimestamp(us / 1e6, tz=UTC) for us in event_us],
    }
    for j, name in enumerate(group.feature_names):
        inputs[name] = X[:, j].tolist()  # NaN stays NaN: Feast stores it as null
    store.write_to_online_store(group.name, inputs=inputs)


def _feast_keys(group: FeatureGroup, ids: Sequence[str]) -> list[bytes]:
    """Feast's Redis key of each entity (one hash per entity, all its views' fields)."""
    from feast.infra.online_stores.helpers import _redis_key  # noqa: PLC0415
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey  # noqa: PLC0415
    from feast.protos.feast.types.Value_pb2 import Value  # noqa: PLC0415

    key = group.entity.join_key
    return [
        _redis_key(PROJECT, EntityKey(join_keys=[key], entity_values=[Value(string_val=i)]), 3)
        for i in ids
    ]


def _delete(r: redis.Redis, keys: Sequence[str | bytes]) -> int:
    deleted = 0
    for lo in range(0, len(keys), WRITE_CHUNK):
        deleted += cast(int, r.delete(*keys[lo : lo + WRITE_CHUNK]))
    return deleted


async def _interleaved(
    readers: dict[str, Callable[[int], Any]], repeats: int, warmup: int, block: int
) -> tuple[dict[str, list[float]], dict[str, list[Any]]]:
    """µs and result of each reader on each batch, the readers taking turns by blocks.

    Each reader runs ``block`` batches back to back (a steady stream of reads,
    as in a service), then the next reader takes the same batches. Alternating
    blocks exposes all readers to the same machine load over the run, so the
    ratio stays comparable on a busy host; alternating single calls would not
    be fair either: on a loaded machine a process that has just burnt 5 ms of
    CPU in Feast waits longer to be scheduled again after its next I/O, which
    would be charged to the reader that follows. An awaitable result (the
    asyncio client) is awaited inside its timing.
    """
    for i in range(warmup):
        for fn in readers.values():
            out = fn(i % repeats)
            if inspect.isawaitable(out):
                await out
    times: dict[str, list[float]] = {name: [] for name in readers}
    results: dict[str, list[Any]] = {name: [] for name in readers}
    for lo in range(0, repeats, block):
        for name, fn in readers.items():
            for i in range(lo, min(lo + block, repeats)):
                t0 = time.perf_counter_ns()
                out = fn(i)
                if inspect.isawaitable(out):
                    out = await out
                times[name].append((time.perf_counter_ns() - t0) / 1000)
                results[name].append(out)
    return times, results


def _feast_matrix(resp: Any, names: Sequence[str]) -> Matrix:
    d = resp.to_dict()
    cols = [[np.nan if v is None else v for v in d[n]] for n in names]
    return np.asarray(cols, dtype=np.float32).T


def _same(ours: list[Matrix], theirs: list[Matrix]) -> bool:
    return len(ours) == len(theirs) and all(
        a.shape == b.shape and np.array_equal(a, b, equal_nan=True)
        for a, b in zip(ours, theirs, strict=True)
    )


def _row(
    metric: str, value: float, baseline_name: str, baseline: float, agrees: bool
) -> dict[str, Any]:
    ratio = baseline / value if value > 0 else None
    return {
        "metric": metric,
        "value": round(value, 2),
        "unit": "µs/batch",
        "baseline_name": baseline_name,
        "baseline": round(baseline, 2),
        "ratio": None if ratio is None else round(ratio, 2),
        "better": "lower",
        "agrees": agrees,
        "budget_ratio": BUDGET_RATIO,
        "within_budget": ratio is not None and ratio >= BUDGET_RATIO,
    }


def run(
    rows: int = 64,
    entities: int = 5000,
    repeats: int = 2000,
    warmup: int = 50,
    block: int = 100,
    seed: int = 0,
    settings: Settings | None = None,
) -> dict[str, Any]:
    """Write, time both readers on the same batches, compare, clean up; DESIGN.md §5 JSON."""
    settings = settings or Settings()
    gs = groups(STREAM)
    rng = np.random.default_rng(seed)
    tag = uuid.uuid4().hex[:8]
    ids = {g.name: [f"bench-{tag}-{g.entity.name}-{i}" for i in range(entities)] for g in gs}
    values = {g.name: _values(rng, entities, g) for g in gs}
    now_us = time.time_ns() // 1000
    event_us = {
        g.name: (now_us - rng.integers(0, 86_400_000_000, size=entities)).tolist() for g in gs
    }
    picks = [{g.name: rng.integers(0, entities, size=rows) for g in gs} for _ in range(repeats)]
    batches: list[dict[str, list[str | None]]] = [
        {g.name: [ids[g.name][j] for j in p[g.name]] for g in gs} for p in picks
    ]
    entity_rows = [
        [{g.entity.join_key: ids[g.name][p[g.name][k]] for g in gs} for k in range(rows)]
        for p in picks
    ]
    refs = [f"{g.name}:{f}" for g in gs for f in g.feature_names]
    names = [f for g in gs for f in g.feature_names]

    r = make_redis(settings, timeout_s=10.0)
    server = str(cast(dict[str, Any], r.info("server"))["redis_version"])
    ours_keys = [vector_key(g, i) for g in gs for i in ids[g.name]]
    feast_keys = [k for g in gs for k in _feast_keys(g, ids[g.name])]
    with tempfile.TemporaryDirectory(prefix="bench-features-") as tmp:
        try:
            store = feature_store(settings, data_dir=Path(tmp))
            apply_definitions(store, offline_dir=Path(tmp) / "offline")
            t0 = time.perf_counter()
            for g in gs:
                _write_ours(r, g, ids[g.name], values[g.name], event_us[g.name])
            write_ours_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            for g in gs:
                _write_feast(store, g, ids[g.name], values[g.name], event_us[g.name])
            write_feast_s = time.perf_counter() - t0

            client = OnlineFeatureClient(r, gs)
            aclient = aioredis.Redis.from_url(
                endpoints(settings).redis_url, socket_timeout=10.0, decode_responses=False
            )
            areader = AsyncOnlineFeatureClient(aclient, gs)

            async def measure() -> tuple[dict[str, list[float]], dict[str, list[Any]]]:
                try:
                    return await _interleaved(
                        {
                            "ours": lambda i: client.read(batches[i]),
                            "asyncio": lambda i: areader.read(batches[i]),
                            "feast": lambda i: store.get_online_features(
                                features=refs, entity_rows=entity_rows[i]
                            ),
                        },
                        repeats,
                        warmup,
                        block,
                    )
                finally:
                    await aclient.aclose()

            times, results = asyncio.run(measure())
            t_ours, t_async, t_feast = times["ours"], times["asyncio"], times["feast"]
            got_ours = [res.values for res in results["ours"]]
            got_async = [res.values for res in results["asyncio"]]
            got_feast = [_feast_matrix(resp, names) for resp in results["feast"]]
            # Every sampled row exists: anything but PRESENT means the comparison is void.
            all_present = all(
                bool((c == PRESENT).all())
                for res in results["ours"] + results["asyncio"]
                for c in res.status_codes.values()
            )
        finally:
            deleted_ours = _delete(r, ours_keys)
            deleted_feast = _delete(r, feast_keys)
            r.close()

    agrees = all_present and _same(got_ours, got_feast)
    agrees_async = all_present and _same(got_async, got_feast)
    feast_name = f"feast {version('feast')} get_online_features"
    p50, mean = statistics.median, statistics.fmean
    return {
        "bench": "features",
        "conditions": {
            "rows": rows,
            "entities": entities,
            "repeats": repeats,
            "warmup": warmup,
            "block": block,
            "groups": ", ".join(f"{g.name} ({len(g.features)} features)" for g in gs),
            "features": len(names),
            "missing_share": MISSING_SHARE,
            "timing": "one call per sample (perf_counter_ns); ours: read() incl. decode to "
            "matrix, statuses, ages; Feast: get_online_features() only, to_dict() untimed",
            "all_rows_present": all_present,
            "p99_us": {
                "ours": round(float(np.percentile(t_ours, 99)), 1),
                "ours_asyncio": round(float(np.percentile(t_async, 99)), 1),
                "feast": round(float(np.percentile(t_feast, 99)), 1),
            },
            "write_s": {"ours": round(write_ours_s, 3), "feast": round(write_feast_s, 3)},
            "cleanup_deleted": {
                "ours": f"{deleted_ours}/{len(ours_keys)}",
                "feast": f"{deleted_feast}/{len(feast_keys)}",
            },
            "feast": version("feast"),
            "redis-py": version("redis"),
            "hiredis": version("hiredis"),
            "redis-server": server,
            "numpy": np.__version__,
            "python": platform.python_version(),
            "machine": platform.machine(),
        },
        "rows": [
            _row(
                f"online read batch {rows} p50",
                p50(t_ours),
                f"{feast_name} p50",
                p50(t_feast),
                agrees,
            ),
            _row(
                f"online read batch {rows} mean",
                mean(t_ours),
                f"{feast_name} mean",
                mean(t_feast),
                agrees,
            ),
            _row(
                f"online read batch {rows} p50 (asyncio)",
                p50(t_async),
                f"{feast_name} p50",
                p50(t_feast),
                agrees_async,
            ),
        ],
    }
