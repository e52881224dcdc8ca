"""The offline path: a training set and Feast offline files from simulated streams.

A small transactions-only world (100 customers, 200 terminals, 18 days, so
chargebacks arrive in time to move the terminals' risk) is simulated to
Parquet, then built into a training set. Checked: one row per event, typed
columns, missing values as nulls (never 0, never NaN), point-in-time
correctness against :func:`offline.compute` run on the world cut at an event
(no event or label from after it), and Feast's ``get_historical_features``
over the offline files returning the same values at the events' times.

What Feast's point-in-time join does (observed with Feast 0.67's file
offline store, which runs on dask): for an entity at ``T`` it serves the row of
the entity's newest event at or before ``T`` within the view's TTL (the group's
``max_age_s``), so at an event's own time it agrees with the training set, and
between two events it serves the earlier event's values (not windows slid to
``T``). Where it differs:

- An entity Feast has never seen gets nulls, but an entity row whose entity has
  rows only outside ``[T - TTL, T]`` (before its first event, or after a gap
  longer than the TTL) is dropped from the result, not returned with nulls:
  the result can have fewer rows than the entity frame.
- Ties: entity rows with the same keys and timestamp collapse into one, and
  when one entity has two events at the same timestamp Feast serves one of the
  tied feature rows (observed: the last written, after both events) where the
  training set gives each event its own point-in-time value.

The comparison therefore covers events whose ``(entity, event_time)`` is
unique; the test world has none tied, and the test says so.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from streamscore.libs.config import Settings
from streamscore.libs.contracts.events import Transaction
from streamscore.libs.contracts.labels import Chargeback
from streamscore.libs.features.definitions import (
    feature_schema_hash,
    groups,
    model_features,
)
from streamscore.libs.features.offline import compute
from streamscore.libs.features.training_rows import group_columns, training_columns
from streamscore.libs.simulator.scenario import get
from streamscore.libs.simulator.transaction_stream import TransactionStreamConfig
from streamscore.libs.simulator.transactions import TransactionScenario
from streamscore.services.feast_store import apply_definitions, feature_store
from streamscore.services.sim_files import simulate_to_files
from streamscore.services.training_set import (
    TIMESTAMP,
    TrainingSetResult,
    build_training_set,
    main_features_offline,
)

SCENARIO = replace(
    get("small"),
    days=18,
    logins=None,
    sensors=None,
    clicks=None,
    transactions=TransactionStreamConfig(TransactionScenario(n_customers=100, n_terminals=200)),
)
FEATURES = model_features("transactions")
EVENTS_FILE = "events.transactions.parquet"
CUSTOMER, TERMINAL = groups("transactions")


@dataclass(frozen=True)
class Built:
    sim: Path
    counts: dict[str, int]
    result: TrainingSetResult
    messages: list[str]

    def table(self) -> pa.Table:
        return pq.read_table(self.result.training_set)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    sim = tmp_path_factory.mktemp("sim")
    counts = simulate_to_files(SCENARIO, seed=3, out=sim, progress=lambda _m: None)
    messages: list[str] = []
    result = build_training_set(sim, tmp_path_factory.mktemp("out"), progress=messages.append)
    return Built(sim, counts, result, messages)


def _read(path: Path, message_type: type[Any]) -> list[Any]:
    table = pq.read_table(path)
    table = table.select([n for n in table.column_names if not n.startswith("truth_")])
    return [msgspec.convert(r, message_type) for r in table.to_pylist()]


def _f32(x: float | None) -> float | None:
    return None if x is None else float(np.float32(x))


def test_one_row_per_event_with_typed_columns(built: Built) -> None:
    table = built.table()
    events = pq.read_table(built.sim / EVENTS_FILE)
    assert table.num_rows == built.counts["events.transactions"] == built.result.rows
    assert table.column("event_id").to_pylist() == events.column("event_id").to_pylist()
    truth = [n for n in events.column_names if n.startswith("truth_")]
    assert "truth_fraud" in truth
    assert table.column_names == [*training_columns("transactions"), *truth]
    assert table.column("truth_fraud").equals(events.column("truth_fraud"))
    for name in FEATURES:
        assert table.schema.field(name).type == pa.float32(), name
    meta = table.schema.metadata
    assert meta[b"features_schema_hash"].decode() == feature_schema_hash("transactions")
    assert json.loads(meta[b"model_features"]) == FEATURES
    assert json.loads(meta[b"scenario"])["seed"] == 3
    assert set(table.column("status_customer_tx").to_pylist()) == {"PRESENT", "NOT_FOUND"}
    assert built.result.duplicates == 0 and not built.result.rejected
    assert built.result.labels == built.counts["labels.chargebacks"]
    assert "rows/s" in built.messages[-1]
    for g in (CUSTOMER, TERMINAL):
        offline = pq.read_table(built.result.offline_files[g.name])
        assert offline.column_names == group_columns(g)
        assert offline.num_rows == table.num_rows
        assert offline.column(g.entity.join_key).equals(table.column(g.entity.join_key))


def test_missing_is_null_never_zero_nor_nan(built: Built) -> None:
    table = built.table()
    for name in FEATURES:
        assert pc.sum(pc.is_nan(table.column(name))).as_py() in (0, None), name
    # A customer's first transaction has no previous one and no history to score
    # the amount against: missing, not 0.
    df = table.select(["customer_id", "customer_secs_since_last_tx", "customer_amount_zscore_30d"])
    first = df.to_pandas().groupby("customer_id").head(1)
    assert first["customer_secs_since_last_tx"].isna().all()
    assert first["customer_amount_zscore_30d"].isna().all()
    assert table.column("customer_secs_since_last_tx").null_count >= len(first)


def test_point_in_time_equals_the_world_cut_at_the_event(built: Built) -> None:
    """Row ``i`` equals ``compute`` over events ``[:i+1]`` and the labels arrived by then
    (and so does every row before ``i``: nothing from after an event reaches it)."""
    events = _read(built.sim / EVENTS_FILE, Transaction)
    labels = _read(built.sim / "labels.chargebacks.parquet", Chargeback)
    rows = built.table().select(["event_id", *FEATURES]).to_pylist()
    rng = np.random.default_rng(0)
    n = len(events)
    cuts = sorted({*rng.integers(n // 2, n, size=2).tolist(), n // 3})
    risky = 0
    for cut in cuts:
        t = events[cut].event_time
        known = [lb for lb in labels if lb.event_time <= t]
        assert len(known) < len(labels)  # the cut leaves labels out
        ref = list(compute("transactions", events[: cut + 1], known))
        assert len(ref) == cut + 1
        for row, (event, result) in zip(rows, ref, strict=False):
            assert row["event_id"] == event.event_id
            assert {f: row[f] for f in FEATURES} == {f: _f32(result.values[f]) for f in FEATURES}
        risky += sum(1 for r in rows[: cut + 1] if r["terminal_risk_30d"])
    # Labels do move features in the compared rows, so the cut is a real test.
    assert risky > 0


def _column(table: pa.Table, name: str) -> np.ndarray:
    """A feature column as float32, null (or Feast's NaN) as NaN."""
    return np.asarray(table.column(name).to_numpy(zero_copy_only=False), dtype=np.float32)


def _ties(table: pa.Table, key: str) -> int:
    """Events sharing their entity and timestamp with another event."""
    groups_ = table.group_by([key, "event_time"]).aggregate([])
    return int(table.num_rows - groups_.num_rows)


@pytest.mark.integration
def test_feast_historical_features_agree(
    stack_settings: Settings, built: Built, tmp_path: Path
) -> None:
    store = feature_store(stack_settings, data_dir=tmp_path)
    apply_definitions(store, offline_dir=built.result.offline_files[CUSTOMER.name].parent)
    table = built.table()
    # No ties in this world (see the module docstring for what Feast does with them).
    assert _ties(table, "customer_id") == _ties(table, "terminal_id") == 0
    rng = np.random.default_rng(1)
    risky = np.flatnonzero(_column(table, "terminal_risk_30d") > 0)[:20]
    missing = np.flatnonzero(np.isnan(_column(table, "customer_amount_zscore_30d")))[:20]
    assert len(risky) and len(missing)
    idx = np.unique(np.concatenate([rng.choice(table.num_rows, 150), risky, missing]))
    sample = table.take(idx)
    entity_df = (
        sample.select(["event_id", "customer_id", "terminal_id", "event_time"])
        .rename_columns(["event_id", "customer_id", "terminal_id", "event_timestamp"])
        .to_pandas()
    )
    refs = [f"{g.name}:{f}" for g in (CUSTOMER, TERMINAL) for f in g.feature_names]
    got = store.get_historical_features(entity_df=entity_df, features=refs).to_arrow()
    position = {e: i for i, e in enumerate(got.column("event_id").to_pylist())}
    assert sorted(position) == sorted(sample.column("event_id").to_pylist())
    got = got.take([position[e] for e in sample.column("event_id").to_pylist()])
    for ref in refs:
        name = ref.split(":")[1]
        np.testing.assert_array_equal(_column(got, name), _column(sample, name), err_msg=name)


@pytest.mark.integration
def test_feast_serves_newest_row_within_ttl_and_nothing_outside(
    stack_settings: Settings, built: Built, tmp_path: Path
) -> None:
    """Around one customer's events: between two events, the earlier event's values;
    for an unknown customer, nulls (never 0); before the first event or past the TTL,
    no value: Feast 0.67 drops such an entity row (or, were that fixed, nulls)."""
    store = feature_store(stack_settings, data_dir=tmp_path)
    apply_definitions(store, offline_dir=built.result.offline_files[CUSTOMER.name].parent)
    table = built.table()
    customer = table.column("customer_id")[0].as_py()
    mine = table.filter(pc.equal(table.column("customer_id"), customer))
    times = mine.column("event_time").to_pylist()
    second = timedelta(seconds=1)
    assert times[1] - times[0] > second
    cases = {
        "after_first": (customer, times[0] + second),
        "unknown": ("C-nobody", times[0]),
        "before": (customer, times[0] - second),
        "past_ttl": (customer, times[-1] + timedelta(seconds=CUSTOMER.max_age_s) + second),
    }
    entity_df = pa.table(
        {
            "case": list(cases),
            "customer_id": [c for c, _ in cases.values()],
            "event_timestamp": pa.array([t for _, t in cases.values()], TIMESTAMP),
        }
    ).to_pandas()
    refs = [f"{CUSTOMER.name}:{f}" for f in CUSTOMER.feature_names]
    got = store.get_historical_features(entity_df=entity_df, features=refs).to_arrow()
    row = {c: i for i, c in enumerate(got.column("case").to_pylist())}
    assert {"after_first", "unknown"} <= set(row)
    first = mine.slice(0, 1)
    for name in CUSTOMER.feature_names:
        values = _column(got, name)
        np.testing.assert_array_equal(
            values[row["after_first"]], _column(first, name)[0], err_msg=name
        )
        for case in ("unknown", "before", "past_ttl"):
            assert case not in row or np.isnan(values[row[case]]), (case, name)


def test_duplicates_and_bad_rows_counted_disorder_refused(built: Built, tmp_path: Path) -> None:
    events = pq.read_table(built.sim / EVENTS_FILE).slice(0, 50)
    rows = events.to_pylist()
    rows.insert(11, dict(rows[10]))  # a redelivered event: same id, right after the first
    rows[20] = {**rows[20], "amount": -1.0}  # breaks the contract: skipped, counted
    sim = tmp_path / "sim"
    sim.mkdir()
    pq.write_table(pa.Table.from_pylist(rows, schema=events.schema), sim / EVENTS_FILE)
    res = build_training_set(sim, tmp_path / "out", progress=lambda _m: None)
    assert (res.rows, res.duplicates, res.labels) == (49, 1, 0)
    assert res.rejected == {"events.transactions: constraint": 1}
    ids = pq.read_table(res.training_set).column("event_id").to_pylist()
    assert len(set(ids)) == len(ids) == 49
    rows[30], rows[40] = rows[40], rows[30]
    pq.write_table(pa.Table.from_pylist(rows, schema=events.schema), sim / EVENTS_FILE)
    with pytest.raises(ValueError, match="not in event-time order"):
        build_training_set(sim, tmp_path / "out2", progress=lambda _m: None)
    assert not list((tmp_path / "out2").rglob("*.parquet*"))  # nothing half-written left


def test_cli_entry_point_reports_missing_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main_features_offline(["--sim", str(tmp_path / "nothing"), "--out", str(tmp_path)]) == 1
    assert "no events.transactions events" in capsys.readouterr().err
