"""The model registry on a real MLflow SQLite store (and the model store on the real Redis).

Real model folders (XGBoost -> ONNX behind the parity gate, tests/model_folders.py)
are registered; folders whose gate did not pass are refused; aliases move with
an audit entry (who, when, why, gate) and version tags; ``promote_champion``
moves the alias and the serving model together; the CLI prints the audit.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from dataclasses import replace
from itertools import pairwise
from pathlib import Path

import msgspec
import pytest
import redis

from streamscore.libs.config import Settings
from streamscore.libs.model.export import PARITY_FILE
from streamscore.libs.model.manifest import MANIFEST_FILE, ModelManifest
from streamscore.libs.model.safety import ModelRefused
from streamscore.services.model_registry import (
    GateNotPassed,
    ModelRegistry,
    RegistryError,
    promote_champion,
    registered_name,
)
from streamscore.services.model_store import ModelStore
from tests.model_folders import copied, renamed, tamper, trained

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore:.*noload.*:DeprecationWarning"),  # MLflow 3.17 on SA 2.1
]
STREAM = "transactions"


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    return {
        "v1": trained(root / "v1", "tx-reg-1", seed=1),
        "v2": trained(root / "v2", "tx-reg-2", seed=2),
    }


def _settings(tmp: Path) -> Settings:
    return Settings(
        home=tmp / "home",
        profile="test",
        mlflow_tracking_uri=f"sqlite:///{tmp / 'mlflow.db'}",
        models_root=tmp / "served",
    )


def _with_parity(src: Path, dst: Path, **parity: float) -> Path:
    copied(src, dst)
    m = ModelManifest.from_json((dst / MANIFEST_FILE).read_bytes())
    m = msgspec.structs.replace(m, parity={**m.parity, **parity})
    (dst / MANIFEST_FILE).write_bytes(m.to_json())
    return dst


def test_register_refuses_folders_whose_gate_did_not_pass(
    models: dict[str, Path], tmp_path: Path
) -> None:
    reg = ModelRegistry.open(_settings(tmp_path))
    cases = {
        "flips": _with_parity(models["v1"], tmp_path / "flips", flips=2.0, passed=0.0),
        "diff": _with_parity(models["v1"], tmp_path / "diff", max_abs_diff=1e-3),
    }
    for case, folder in cases.items():
        with pytest.raises(GateNotPassed, match="parity gate not passed"):
            reg.register(folder, stream=STREAM, by="ci", reason=case)
    no_report = copied(models["v1"], tmp_path / "no-report")
    (no_report / PARITY_FILE).unlink()
    with pytest.raises(GateNotPassed, match=PARITY_FILE):
        reg.register(no_report, stream=STREAM, by="ci", reason="no report")
    # A folder the serving loader refuses (flipped byte) is not registered either.
    with pytest.raises(ModelRefused):
        reg.register(
            tamper(copied(models["v1"], tmp_path / "t")), stream=STREAM, by="a", reason="b"
        )
    assert reg.versions(STREAM) == []


def test_register_alias_audit_and_promote(
    models: dict[str, Path], tmp_path: Path, stack_settings: Settings
) -> None:
    settings = _settings(tmp_path)
    reg = ModelRegistry.open(settings)
    v1 = reg.register(models["v1"], stream=STREAM, by="ci", reason="first model")
    assert (v1.version, v1.model_version) == ("1", "tx-reg-1")
    assert v1.gate["passed"] == 1.0 and v1.gate["flips"] == 0.0
    assert v1.folder == str(models["v1"].resolve()) and v1.source.endswith("/model")
    assert json.loads(v1.tags["streamscore.gate_report"])["passed"] is True
    assert json.loads(v1.tags["streamscore.manifest"])["model_version"] == "tx-reg-1"
    # The run holds the folder, the gate report and the manifest as artifacts.
    arts = {a.path for a in reg.client.list_artifacts(v1.run_id)}
    assert {"model", "gate_report.json", "manifest.json"} <= arts

    # Registering the same folder again is idempotent; another model under its version is not.
    assert reg.register(models["v1"], stream=STREAM, by="ci", reason="again").version == "1"
    other = renamed(models["v2"], tmp_path / "impostor", "tx-reg-1")
    with pytest.raises(RegistryError, match="already registered"):
        reg.register(other, stream=STREAM, by="ci", reason="impostor")
    v2 = reg.register(models["v2"], stream=STREAM, by="retrainer", reason="drift")
    assert v2.version == "2"

    # Aliases: every move audited (who, when, why, from, to, gate), version tags set.
    with pytest.raises(RegistryError, match="unknown alias"):
        reg.set_alias(STREAM, "golden", "1", by="a", reason="b")
    with pytest.raises(RegistryError, match="no version 9"):
        reg.set_alias(STREAM, "challenger", "9", by="a", reason="b")
    with pytest.raises(RegistryError, match="who"):
        reg.set_alias(STREAM, "challenger", "2", by="", reason="b")
    reg.set_alias(STREAM, "champion", "1", by="ops-alice", reason="bootstrap")
    reg.set_alias(STREAM, "challenger", "2", by="retrainer", reason="drift alert a1")
    reg.set_alias(STREAM, "shadow", "2", by="retrainer", reason="shadow first")
    assert reg.by_alias(STREAM, "champion").version == "1"  # type: ignore[union-attr]
    assert reg.by_alias(STREAM, "canary") is None
    tags = reg.version(STREAM, "2").tags
    assert tags["alias.challenger.set_by"] == "retrainer"
    assert tags["alias.challenger.reason"] == "drift alert a1"

    # The explicit approval: champion alias and the model store together.
    client = redis.Redis.from_url(stack_settings.redis_url or "")
    store = ModelStore(client, namespace=f"it-{uuid.uuid4().hex[:8]}")
    store.set_challenger(
        STREAM, models["v2"], mode="shadow", share=0.0, by="retrainer", reason="drift a1"
    )
    entry, ref = promote_champion(reg, store, STREAM, "2", by="ops-bob", reason="shadow clean")
    assert store.challenger(STREAM) is None  # the store's challenger slot was promoted
    assert (entry.alias, entry.version, entry.previous) == ("champion", "2", "1")
    assert ref.version == "tx-reg-2" and store.active(STREAM) == ref
    assert reg.by_alias(STREAM, "champion").version == "2"  # type: ignore[union-attr]
    assert reg.by_alias(STREAM, "challenger") is None  # cleared: it is the champion now
    # A refusal by the store (the active version again) leaves the registry as it was.
    n = len(reg.audit(STREAM))
    with pytest.raises(Exception, match="already the active"):
        promote_champion(reg, store, STREAM, "2", by="ops-bob", reason="twice")
    assert len(reg.audit(STREAM)) == n

    audit = reg.audit(STREAM)
    assert [(e.alias, e.version, e.by) for e in audit] == [
        ("champion", "1", "ops-alice"),
        ("challenger", "2", "retrainer"),
        ("shadow", "2", "retrainer"),
        ("champion", "2", "ops-bob"),
        ("challenger", None, "ops-bob"),
        ("shadow", None, "ops-bob"),
    ]
    assert audit[3].reason == "shadow clean" and audit[3].gate["flips"] == 0.0
    assert all(a.at <= b.at for a, b in pairwise(audit))

    # A version whose folder is gone is served from the registry's artifact.
    gone = replace(reg.version(STREAM, "2"), folder=str(tmp_path / "gone"))
    folder = reg.folder_of(gone, STREAM)
    assert folder == (settings.models_root / STREAM / "tx-reg-2").resolve()
    assert (folder / "model.onnx").read_bytes() == (models["v2"] / "model.onnx").read_bytes()

    # The CLI prints the same audit and the aliases.
    env = {
        **os.environ,
        "STREAMSCORE_HOME": str(tmp_path / "home"),
        "STREAMSCORE_MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri or "",
    }
    cli = [sys.executable, "-m", "streamscore.services.cli", "model"]
    out = subprocess.run(
        [*cli, "audit", "--stream", STREAM], env=env, capture_output=True, text=True, check=True
    ).stdout
    assert "ops-alice" in out and "shadow clean" in out and "cleared" in out
    shown = subprocess.run(
        [*cli, "show", "--stream", STREAM], env=env, capture_output=True, text=True, check=True
    ).stdout
    assert registered_name(STREAM) in shown and "champion" in shown and "tx-reg-2" in shown
