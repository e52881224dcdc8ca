"""``streamscore train`` end to end on a small simulated world, into a temporary MLflow store.

The ``small`` world's transactions (500 cards, 1,000 terminals) over 13 days:
exactly one split of 5 training days, a 3-day gap and 5 test days (days 0-4,
5-7, 8-12; the handbook's 7/7/7 is the default, shortened to keep the test
small). The command
runs as a process, the way an operator runs it: it builds the training set
through the offline feature path, trains a tiny model (10 trees), exports it
behind the parity gate, logs the run to a SQLite MLflow store under the test's
folder and registers the version. Checked: the model folder loads with the
scorer's loader, the MLflow run has the parameters, metrics, tags and the
model folder, and the registry has the version (only when ``--register``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from streamscore.libs.config import Settings
from streamscore.libs.model.manifest import ModelManifest
from streamscore.libs.simulator.scenario import get
from streamscore.libs.training.params import XGBParams
from streamscore.services.scorer import load_model
from streamscore.services.sim_files import simulate_to_files
from streamscore.services.train_config import TrainConfig
from streamscore.services.trainer import train

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(120),
    pytest.mark.filterwarnings("ignore:.*noload.*:DeprecationWarning"),  # MLflow 3.17 on SA 2.1
]

NAME = "streamscore-transactions"
PERIODS = ("--train-days", "5", "--delay-days", "3", "--test-days", "5")


def _train(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "STREAMSCORE_HOME": str(tmp / "home"),
        "STREAMSCORE_MLFLOW_TRACKING_URI": f"sqlite:///{tmp / 'mlflow.db'}",
        "STREAMSCORE_MODELS_ROOT": str(tmp / "models"),
    }
    cmd = [sys.executable, "-m", "streamscore.services.cli", "train", "--sim", str(tmp / "sim")]
    return subprocess.run(
        [*cmd, "--n-estimators", "10", "--jobs", "1", *PERIODS, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )


def test_train_end_to_end_into_mlflow(tmp_path: Path) -> None:
    world = get("small").only("transactions").with_days(13)
    simulate_to_files(world, seed=5, out=tmp_path / "sim", progress=lambda _m: None)

    proc = _train(tmp_path, "--register", "--version", "it-1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "card precision@100" in proc.stdout and "registered" in proc.stdout
    assert "building the training set" in proc.stdout  # cold start: features computed first

    # 1. The model folder (default place: <models_root>/<stream>/<version>) serves.
    folder = tmp_path / "models" / "transactions" / "it-1"
    load_model(folder, "transactions")
    manifest = ModelManifest.from_json((folder / "manifest.json").read_bytes())
    assert manifest.model_version == "it-1" and manifest.model_name == NAME
    assert manifest.trained_from.date().isoformat() == "2026-01-05"
    assert manifest.trained_to.date().isoformat() == "2026-01-10"
    assert manifest.parity["passed"] == 1.0 and manifest.parity["flips"] == 0.0
    assert 0.5 < manifest.metrics["test_auc_roc"] <= 1.0
    assert manifest.params["n_trees"] == 10

    # 2. The MLflow run: parameters, metrics, tags, artifacts.
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    exp = client.get_experiment_by_name(NAME)
    assert exp is not None
    (run,) = client.search_runs([exp.experiment_id])
    params, metrics, tags = run.data.params, run.data.metrics, run.data.tags
    assert params["xgb.n_estimators"] == "10" and params["xgb.tree_method"] == "exact"
    assert params["split.train"] == "2026-01-05..2026-01-09"
    assert params["split.gap"] == "2026-01-10..2026-01-12"
    assert params["split.test"] == "2026-01-13..2026-01-17"
    assert params["label"] == "truth_fraud"
    for m in ("test_auc_roc", "test_average_precision", "test_card_precision_at_100"):
        assert metrics[m] == pytest.approx(manifest.metrics[m])
    assert metrics["train_rows"] > 0 and metrics["test_positives"] > 0
    daily = client.get_metric_history(run.info.run_id, "test_card_precision_at_100_daily")
    assert sorted(m.step for m in daily) == list(range(5))
    assert tags["feature_schema_hash"] == manifest.feature_schema_hash
    assert tags["data_from"].startswith("2026-01-05") and tags["data_to"].startswith("2026-01-17")
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "model")}
    assert {"model/manifest.json", "model/model.onnx", "model/parity.json"} <= artifacts
    schema = json.loads(
        Path(
            client.download_artifacts(run.info.run_id, "feature_schema.json", str(tmp_path))
        ).read_text()
    )
    assert schema["feature_names"] == list(manifest.feature_names)

    # 3. The registry version points at the run's model folder.
    (version,) = client.search_model_versions(f"name='{NAME}'")
    assert str(version.version) == "1" and version.run_id == run.info.run_id
    assert version.source.endswith("/model")
    assert version.tags["streamscore.model_version"] == "it-1"

    # 4. Without register (in process, to keep the test short): a second run that reuses
    #    the training set, and no new registry version.
    lines: list[str] = []
    settings = Settings(home=tmp_path / "home", mlflow_tracking_uri=uri)
    cfg = TrainConfig(
        sim=tmp_path / "sim",
        out=tmp_path / "it-2",
        version="it-2",
        params=replace(XGBParams(), n_estimators=10),
        train_days=5,
        delay_days=3,
        test_days=5,
    )
    result = train(cfg, settings, progress=lines.append)
    assert result.registered is None and result.run_id is not None
    assert any(line.startswith("reusing the training set") for line in lines)
    assert result.quality.auc_roc == pytest.approx(metrics["test_auc_roc"])  # deterministic
    assert len(client.search_runs([exp.experiment_id])) == 2
    assert len(client.search_model_versions(f"name='{NAME}'")) == 1

    # 5. --examples: the same rows in the labelled-examples layout (the training set with
    #    `label`, split in day folders as the label joiner writes them, plus a file of another
    #    feature declaration that must be skipped) train the same model.
    ts = pq.read_table(tmp_path / "sim" / "training" / "transactions.parquet")
    ex = ts.rename_columns(["label" if c == "truth_fraud" else c for c in ts.column_names])
    days = pc.strftime(ex.column("event_time"), format="%Y-%m-%d")
    root = tmp_path / "examples" / "transactions"
    for day in sorted(set(days.to_pylist())):
        part = ex.filter(pc.equal(days, day))
        (root / f"date={day}").mkdir(parents=True)
        pq.write_table(part, root / f"date={day}" / "x1.parquet")
    old_decl = ex.slice(0, 5).replace_schema_metadata({"features_schema_hash": "f" * 64})
    pq.write_table(old_decl, root / "date=2026-01-05" / "x0-old.parquet")
    lines.clear()
    result = train(
        replace(cfg, sim=None, examples=tmp_path / "examples", out=tmp_path / "it-3", track=False),
        settings,
        progress=lines.append,
    )
    assert any(
        line.startswith("skipped 1 file(s) of another feature declaration") for line in lines
    )
    assert result.source["files"] == 13 and result.source["skipped_other_declaration"] == 1
    assert result.counts["train_rows"] == metrics["train_rows"]
    assert result.quality.auc_roc == pytest.approx(metrics["test_auc_roc"])
    assert result.quality.average_precision == pytest.approx(metrics["test_average_precision"])
