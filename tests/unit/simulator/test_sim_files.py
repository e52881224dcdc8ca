"""Simulated streams written to Parquet: typed columns, truth kept apart, reproducible bytes."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from streamscore.libs.simulator.scenario import get
from streamscore.services.sim_files import simulate_to_files


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_same_seed_byte_identical_files(tmp_path: Path) -> None:
    scenario = get("small").with_days(10)
    a = simulate_to_files(scenario, seed=4, out=tmp_path / "a", progress=lambda _m: None)
    simulate_to_files(scenario, seed=4, out=tmp_path / "b", progress=lambda _m: None)
    simulate_to_files(scenario, seed=5, out=tmp_path / "c", progress=lambda _m: None)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    assert _digest(tmp_path / "a") != _digest(tmp_path / "c")
    assert a["events.transactions"] > 0


def test_columns_typed_and_scenario_written(tmp_path: Path) -> None:
    scenario = replace(get("small"), days=40, logins=None, sensors=None, clicks=None)
    counts = simulate_to_files(scenario, seed=1, out=tmp_path, progress=lambda _m: None)
    tx = pq.read_table(tmp_path / "events.transactions.parquet")
    assert tx.num_rows == counts["events.transactions"]
    assert tx.schema.field("event_time").type == pa.timestamp("us", tz="UTC")
    assert tx.schema.field("amount").type == pa.float64()
    assert tx.schema.field("truth_fraud").type == pa.bool_()
    labels = pq.read_table(tmp_path / "labels.chargebacks.parquet")
    assert set(labels.column("target_event_id").to_pylist()) <= set(
        tx.column("event_id").to_pylist()
    )
    meta = json.loads((tmp_path / "scenario.json").read_text())
    assert meta["seed"] == 1 and meta["days"] == 40 and meta["counts"] == counts
