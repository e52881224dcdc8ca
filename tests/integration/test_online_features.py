"""Online feature reads against the real Redis (and Feast on it): statuses, values, one MGET."""

from __future__ import annotations

import asyncio
import importlib.util
import math
import socket
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import redis
import redis.asyncio as aioredis

from streamscore.libs.config import Settings
from streamscore.libs.features.definitions import groups
from streamscore.libs.features.feast_repo import PROJECT
from streamscore.libs.features.online_layout import pack, unpack, vector_key
from streamscore.libs.features.spec import FeatureGroup
from streamscore.services.clients import endpoints, make_redis
from streamscore.services.feast_store import apply_definitions, feature_store
from streamscore.services.online_features import (
    AsyncOnlineFeatureClient,
    OnlineFeatureClient,
    OnlineRead,
    decode_read,
)

pytestmark = pytest.mark.integration

CUSTOMER, TERMINAL = groups("transactions")
NOW = 1_800_000_000.0
BENCH = Path(__file__).resolve().parents[2] / "load-tests" / "bench_features.py"


def _us(t: float) -> int:
    return round(t * 1e6)


def _values(group: FeatureGroup, seed: int) -> list[float | None]:
    """Distinct values per seed, with one missing value (never 0, so 0 cannot pass for None)."""
    out: list[float | None] = [float(seed) + 0.25 * (j + 1) for j in range(len(group.features))]
    out[1] = None
    return out


@pytest.fixture
def r(stack_settings: Settings) -> Iterator[redis.Redis]:
    client = make_redis(stack_settings, timeout_s=5.0)
    yield client
    client.close()


@pytest.fixture
def tag(r: redis.Redis) -> Iterator[str]:
    """A per-test id prefix; every serving vector under it is deleted afterwards."""
    t = f"it-{uuid.uuid4().hex[:8]}"
    yield t
    keys = [k for g in (CUSTOMER, TERMINAL) for k in r.scan_iter(f"ss:fv:{{{g.name}:{t}*")]
    if keys:
        r.delete(*keys)


def _put(
    r: redis.Redis,
    group: FeatureGroup,
    entity: str,
    seed: int,
    event_s: float,
    *,
    as_: FeatureGroup | None = None,
) -> None:
    """Store the vector of ``_values(group, seed)``, packed under ``as_``'s declaration."""
    blob = pack(as_ or group, _values(group, seed), event_time_us=_us(event_s), written_us=_us(NOW))
    r.set(vector_key(group, entity), blob, ex=600)


@pytest.fixture
def scenario(r: redis.Redis, tag: str) -> dict[str, list[str | None]]:
    """Five customer rows (present, stale, missing, foreign, truncated) and their terminals."""
    _put(r, CUSTOMER, f"{tag}-c-present", 1, NOW - 5)
    _put(r, CUSTOMER, f"{tag}-c-stale", 2, NOW - CUSTOMER.max_age_s - 10)
    # Same length, another declaration (a renamed feature): the hash must refuse it.
    renamed = (replace(CUSTOMER.features[0], name="renamed"), *CUSTOMER.features[1:])
    _put(r, CUSTOMER, f"{tag}-c-foreign", 3, NOW - 5, as_=replace(CUSTOMER, features=renamed))
    r.set(vector_key(CUSTOMER, f"{tag}-c-truncated"), b"\x01short", ex=600)
    _put(r, TERMINAL, f"{tag}-t-1", 7, NOW - 60)
    customers = ("present", "stale", "missing", "foreign", "truncated")
    return {
        CUSTOMER.name: [f"{tag}-c-{k}" for k in customers],
        TERMINAL.name: [f"{tag}-t-1", f"{tag}-t-1", None, f"{tag}-t-missing", f"{tag}-t-1"],
    }


def _check_scenario(got: OnlineRead) -> None:
    assert got.n_rows == 5
    assert got.feature_names == (*CUSTOMER.feature_names, *TERMINAL.feature_names)
    assert got.statuses == {
        CUSTOMER.name: ["PRESENT", "OUTSIDE_MAX_AGE", "NOT_FOUND", "ERROR", "ERROR"],
        TERMINAL.name: ["PRESENT", "PRESENT", "NOT_FOUND", "NOT_FOUND", "PRESENT"],
    }
    ages = got.ages_s
    assert ages[CUSTOMER.name][0] == pytest.approx(5.0)
    assert ages[CUSTOMER.name][1] == pytest.approx(CUSTOMER.max_age_s + 10)
    assert ages[CUSTOMER.name][2:] == [None, None, None]
    assert ages[TERMINAL.name] == [pytest.approx(60.0)] * 2 + [None, None, pytest.approx(60.0)]

    expected_c = dict(zip(CUSTOMER.feature_names, _values(CUSTOMER, 1), strict=True))
    expected_t = dict(zip(TERMINAL.feature_names, _values(TERMINAL, 7), strict=True))
    assert got.row(0) == pytest.approx({**expected_c, **expected_t}, nan_ok=False)
    # A stale vector's values are returned (flagged by its status, not hidden).
    stale = dict(zip(CUSTOMER.feature_names, _values(CUSTOMER, 2), strict=True))
    assert {k: got.row(1)[k] for k in CUSTOMER.feature_names} == pytest.approx(stale)
    # Missing and undecodable read as None, never 0.
    for i in (2, 3, 4):
        assert all(got.row(i)[f] is None for f in CUSTOMER.feature_names)
    assert all(got.row(2)[f] is None for f in TERMINAL.feature_names)
    assert got.row(0)[CUSTOMER.feature_names[1]] is None
    assert np.isnan(got.values[2]).all()

    assert got.row_statuses(3) == {CUSTOMER.name: "ERROR", TERMINAL.name: "NOT_FOUND"}
    assert got.row_freshness(2) == {CUSTOMER.name: None, TERMINAL.name: None}
    assert got.error_count == 2
    assert [(e.group, e.entity_id.rsplit("-", 1)[1]) for e in got.errors] == [
        (CUSTOMER.name, "foreign"),
        (CUSTOMER.name, "truncated"),
    ]
    assert "another feature declaration" in got.errors[0].reason
    assert "truncated" in got.errors[1].reason


def test_statuses_values_and_ages(r: redis.Redis, scenario: dict[str, list[str | None]]) -> None:
    client = OnlineFeatureClient(r, [CUSTOMER, TERMINAL], clock=lambda: NOW)
    got = client.read(scenario)
    _check_scenario(got)
    assert (client.reads, client.errors, client.store_errors) == (1, 2, 0)
    # Values are exactly the layout's own decoding of the stored vector.
    stored = unpack(CUSTOMER, r.get(vector_key(CUSTOMER, scenario[CUSTOMER.name][0])))  # type: ignore[arg-type]
    assert [got.row(0)[f] for f in CUSTOMER.feature_names] == stored.values
    # ``now_s`` overrides the clock (a replay sees the staleness of its own time).
    later = client.read(scenario, now_s=NOW + TERMINAL.max_age_s)
    assert later.statuses[TERMINAL.name][0] == "OUTSIDE_MAX_AGE"


def test_read_rows_like_feast_entity_rows(
    r: redis.Redis, scenario: dict[str, list[str | None]]
) -> None:
    client = OnlineFeatureClient(r, [CUSTOMER, TERMINAL], clock=lambda: NOW)
    rows: list[dict[str, str]] = []
    for c, t in zip(scenario[CUSTOMER.name], scenario[TERMINAL.name], strict=True):
        row = {"customer_id": c} if c is not None else {}
        if t is not None:
            row["terminal_id"] = t
        rows.append(row)
    _check_scenario(client.read_rows(rows))


def _mget_calls(r: redis.Redis) -> int:
    stats: dict[str, Any] = r.info("commandstats")  # type: ignore[assignment]
    return int(stats.get("cmdstat_mget", {}).get("calls", 0))


def test_one_round_trip(r: redis.Redis, scenario: dict[str, list[str | None]]) -> None:
    client = OnlineFeatureClient(r, [CUSTOMER, TERMINAL], clock=lambda: NOW)
    # Redis counts the MGETs it served. Other clients of a shared server may add some
    # between our two INFO calls, so take the quietest of a few attempts.
    deltas = []
    for _ in range(3):
        before = _mget_calls(r)
        client.read(scenario)
        deltas.append(_mget_calls(r) - before)
    assert min(deltas) == 1


def test_async_twin_gives_the_same_result(
    stack_settings: Settings, r: redis.Redis, scenario: dict[str, list[str | None]]
) -> None:
    sync = OnlineFeatureClient(r, [CUSTOMER, TERMINAL], clock=lambda: NOW).read(scenario)

    async def read() -> OnlineRead:
        client = aioredis.Redis.from_url(endpoints(stack_settings).redis_url)
        try:
            reader = AsyncOnlineFeatureClient(client, [CUSTOMER, TERMINAL], clock=lambda: NOW)
            return await reader.read(scenario)
        finally:
            await client.aclose()

    got = asyncio.run(read())
    _check_scenario(got)
    assert np.array_equal(got.values, sync.values, equal_nan=True)
    assert got.statuses == sync.statuses and got.ages_s == sync.ages_s
    assert got.errors == sync.errors


def test_decode_matches_the_layout_decoder() -> None:
    """The vectorised decode (fast path and gap path) equals ``unpack`` row by row."""
    rng = np.random.default_rng(0)
    for gaps in (False, True):
        blobs: list[bytes | None] = []
        expected: list[list[float | None] | None] = []
        for i in range(64):
            if gaps and i % 5 == 0:
                blobs.append(None)
                expected.append(None)
                continue
            vals: list[float | None] = [
                None if rng.random() < 0.1 else float(np.float32(rng.normal()))
                for _ in CUSTOMER.features
            ]
            blob = pack(CUSTOMER, vals, event_time_us=_us(NOW - i), written_us=0)
            blobs.append(blob)
            expected.append(unpack(CUSTOMER, blob).values)
        got = decode_read([CUSTOMER], 64, blobs, now_s=NOW)
        for i, exp in enumerate(expected):
            row = [got.row(i)[f] for f in CUSTOMER.feature_names]
            assert row == (exp if exp is not None else [None] * len(CUSTOMER.features))
            assert got.ages_s[CUSTOMER.name][i] == (None if exp is None else pytest.approx(i))
        # Staleness on both paths: rows older than max_age_s at ``now_s`` (i > 30 here).
        later = decode_read([CUSTOMER], 64, blobs, now_s=NOW + CUSTOMER.max_age_s - 30)
        assert later.statuses[CUSTOMER.name] == [
            "NOT_FOUND" if exp is None else "OUTSIDE_MAX_AGE" if i > 30 else "PRESENT"
            for i, exp in enumerate(expected)
        ]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_store_failure_is_data_when_asked() -> None:
    down = redis.Redis(port=_free_port(), socket_connect_timeout=0.2, socket_timeout=0.2)
    ids: dict[str, list[str | None]] = {CUSTOMER.name: ["a", "b"], TERMINAL.name: ["x", "y"]}
    with pytest.raises(redis.ConnectionError):
        OnlineFeatureClient(down, [CUSTOMER, TERMINAL]).read(ids)
    client = OnlineFeatureClient(down, [CUSTOMER, TERMINAL], store_errors_as_status=True)
    got = client.read(ids)
    assert got.statuses == {CUSTOMER.name: ["ERROR"] * 2, TERMINAL.name: ["ERROR"] * 2}
    assert got.store_error is not None and "ConnectionError" in got.store_error
    assert got.error_count == 4 and client.store_errors == 1
    assert all(v is None for v in got.row(0).values())


def test_refuses_a_client_that_decodes_responses(stack_settings: Settings) -> None:
    text = redis.Redis.from_url(endpoints(stack_settings).redis_url, decode_responses=True)
    with pytest.raises(ValueError, match="decode_responses"):
        OnlineFeatureClient(text, [CUSTOMER])


def test_agrees_with_feast(
    stack_settings: Settings, r: redis.Redis, tag: str, tmp_path: Path
) -> None:
    from feast.infra.online_stores.helpers import _redis_key
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    store = feature_store(stack_settings, data_dir=tmp_path)
    apply_definitions(store, offline_dir=tmp_path / "offline")
    event = datetime.fromtimestamp(round(datetime.now(tz=UTC).timestamp()) - 30, tz=UTC)
    written = {
        g.name: [f"{tag}-{g.entity.name}-{i}" for i in range(n)]
        for g, n in ((CUSTOMER, 3), (TERMINAL, 2))
    }
    try:
        for g in (CUSTOMER, TERMINAL):
            ids = written[g.name]
            rows = [_values(g, 10 * i + 3) for i in range(len(ids))]
            for i, entity in enumerate(ids):
                _put(r, g, entity, 10 * i + 3, event.timestamp())
            inputs: dict[str, list[Any]] = {
                g.entity.join_key: ids,
                "event_time": [event] * len(ids),
            }
            for j, f in enumerate(g.feature_names):
                inputs[f] = [math.nan if v[j] is None else v[j] for v in rows]
            store.write_to_online_store(g.name, inputs=inputs)

        entity_rows = [
            {"customer_id": written[CUSTOMER.name][i % 3], "terminal_id": t}
            for i, t in enumerate([*written[TERMINAL.name], f"{tag}-unknown"])
        ]
        entity_rows.append(
            {"customer_id": f"{tag}-unknown", "terminal_id": written[TERMINAL.name][0]}
        )
        ours = OnlineFeatureClient(r, [CUSTOMER, TERMINAL]).read_rows(entity_rows)
        refs = [f"{g.name}:{f}" for g in (CUSTOMER, TERMINAL) for f in g.feature_names]
        theirs = store.get_online_features(features=refs, entity_rows=entity_rows).to_dict()
        for i in range(len(entity_rows)):
            row = ours.row(i)
            for f in ours.feature_names:
                feast_value = theirs[f][i]
                if feast_value is None:
                    assert row[f] is None, (i, f)
                else:
                    assert np.float32(feast_value) == np.float32(row[f]), (i, f)
        assert ours.statuses == {
            CUSTOMER.name: ["PRESENT"] * 3 + ["NOT_FOUND"],
            TERMINAL.name: ["PRESENT", "PRESENT", "NOT_FOUND", "PRESENT"],
        }
        # Both sides compared real values, and a value missing in both.
        assert theirs[CUSTOMER.feature_names[0]][0] == pytest.approx(3.25)
        assert theirs[CUSTOMER.feature_names[1]][0] is None
    finally:
        feast_keys = [
            _redis_key(
                PROJECT,
                EntityKey(join_keys=[g.entity.join_key], entity_values=[Value(string_val=i)]),
                3,
            )
            for g in (CUSTOMER, TERMINAL)
            for i in written[g.name]
        ]
        r.delete(*feast_keys)


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_features_under_test", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_runs_and_agrees(stack_settings: Settings) -> None:
    bench = _bench()
    kwargs = bench.parse_args(["--rows", "4", "--entities", "30", "--repeats", "5"])
    assert kwargs["rows"] == 4 and kwargs["entities"] == 30
    result = bench.run(**{**kwargs, "warmup": 1}, settings=stack_settings)
    assert result["bench"] == "features"
    conditions = result["conditions"]
    for key in ("rows", "entities", "repeats", "feast", "redis-py", "redis-server", "python"):
        assert key in conditions
    assert conditions["all_rows_present"] is True
    assert conditions["cleanup_deleted"] == {"ours": "60/60", "feast": "60/60"}
    assert len(result["rows"]) == 3
    for row in result["rows"]:
        assert {"metric", "value", "unit", "baseline_name", "baseline", "ratio", "better"} <= set(
            row
        )
        assert row["better"] == "lower" and row["value"] > 0 and row["agrees"] is True
        assert row["ratio"] == pytest.approx(row["baseline"] / row["value"], rel=0.01)
