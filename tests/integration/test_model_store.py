"""The model store on the real Redis with real ONNX model folders: promote, refuse, roll back."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import redis

from streamscore.libs.config import Settings
from streamscore.libs.model.safety import ModelRefused
from streamscore.services.model_store import ModelRef, ModelStore, ModelStoreError, load_reference
from tests.model_folders import copied, renamed, schema_mismatch, tamper, trained

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    return {
        "v1": trained(root / "v1", "tx-admin-1", seed=1),
        "v2": trained(root / "v2", "tx-admin-2", seed=2),
    }


@pytest.fixture
def store(stack_settings: Settings) -> ModelStore:
    # A private namespace: no scorer of the shared Redis ever reads these keys.
    client = redis.Redis.from_url(stack_settings.redis_url or "")
    return ModelStore(client, namespace=f"it-{uuid.uuid4().hex[:8]}")


def _versions(refs: list[ModelRef]) -> list[str]:
    return [r.version for r in refs]


def test_promote_refuse_and_roll_back(
    store: ModelStore, models: dict[str, Path], tmp_path: Path
) -> None:
    assert store.active("transactions") is None and store.history("transactions") == []

    first = store.promote("transactions", models["v1"], "ops-alice", "first model")
    assert first.version == "tx-admin-1" and first.path == str(models["v1"].resolve())
    assert (first.promoted_by, first.reason) == ("ops-alice", "first model")
    assert store.active("transactions") == first

    # A flipped byte in model.onnx: refused by the loader, the previous one stays active.
    bad = tamper(copied(models["v2"], tmp_path / "tampered"))
    with pytest.raises(ModelRefused) as refused:
        store.promote("transactions", bad, "ops-alice", "tampered")
    assert refused.value.reason == "hash_mismatch"
    # A manifest for another feature schema (permuted features): refused.
    with pytest.raises(ModelRefused) as refused:
        store.promote("transactions", schema_mismatch(models["v2"], tmp_path / "perm"), "a", "b")
    assert refused.value.reason == "schema_mismatch"
    # Not a model folder at all.
    with pytest.raises(ModelRefused) as refused:
        store.promote("transactions", tmp_path / "nothing-here", "a", "b")
    assert refused.value.reason == "manifest_missing"
    # A transactions model is not a logins model (its schema differs).
    with pytest.raises(ModelRefused):
        store.promote("logins", models["v2"], "a", "b")
    assert store.active("transactions") == first
    assert _versions(store.history("transactions")) == ["tx-admin-1"]
    assert store.active("logins") is None

    second = store.promote("transactions", models["v2"], "ops-bob", "retrained")
    assert store.active("transactions") == second
    assert _versions(store.history("transactions")) == ["tx-admin-2", "tx-admin-1"]

    # A version names one model: another model claiming tx-admin-1 is refused; the active
    # version promoted again is refused too.
    with pytest.raises(ModelStoreError, match="already names another model"):
        impostor = renamed(models["v2"], tmp_path / "imp", "tx-admin-1")
        store.promote("transactions", impostor, "a", "b")
    with pytest.raises(ModelStoreError, match="already the active"):
        store.promote("transactions", models["v2"], "a", "b")
    with pytest.raises(ModelStoreError, match="unknown stream"):
        store.promote("nope", models["v2"], "a", "b")

    audited: list[ModelRef] = []
    back = store.rollback("transactions", before_apply=audited.append)
    assert back == first == store.active("transactions") and audited == [first]
    with pytest.raises(ModelStoreError, match="no earlier model"):
        store.rollback("transactions")
    with pytest.raises(ModelStoreError, match="no earlier model"):
        store.rollback("logins")

    # Rolled back, the same model can be promoted again (a new history entry).
    again = store.promote("transactions", models["v2"], "ops-bob", "roll forward")
    assert again.version == "tx-admin-2" and again.promoted_at > second.promoted_at
    assert _versions(store.history("transactions")) == ["tx-admin-2", "tx-admin-2", "tx-admin-1"]
    # A rollback goes to the previous version, past the earlier entry of the same model.
    assert store.rollback("transactions") == first
    with pytest.raises(ModelStoreError, match="no earlier model"):
        store.rollback("transactions")


def test_a_failing_audit_applies_nothing(store: ModelStore, models: dict[str, Path]) -> None:
    def audit_down(_ref: ModelRef) -> None:
        raise redis.ConnectionError("audit log unreachable")

    with pytest.raises(redis.ConnectionError):
        store.promote("transactions", models["v1"], "a", "b", before_apply=audit_down)
    assert store.active("transactions") is None and store.history("transactions") == []


def test_rollback_refuses_a_folder_changed_since(
    store: ModelStore, models: dict[str, Path], tmp_path: Path
) -> None:
    old = copied(models["v1"], tmp_path / "old")
    first = store.promote("transactions", old, "a", "first")
    second = store.promote("transactions", models["v2"], "a", "second")
    tamper(old)
    with pytest.raises(ModelRefused) as refused:
        store.rollback("transactions")
    assert refused.value.reason == "hash_mismatch"
    assert store.active("transactions") == second
    # A folder replaced by another valid model under the promoted name: refused too.
    (old / "model.onnx").write_bytes((models["v2"] / "model.onnx").read_bytes())
    renamed(models["v2"], tmp_path / "swapped", first.version)
    for f in ("manifest.json", "model.ubj"):
        (old / f).write_bytes((tmp_path / "swapped" / f).read_bytes())
    with pytest.raises(ModelRefused) as refused:
        load_reference(first, "transactions")
    assert refused.value.reason == "reference_mismatch"
    with pytest.raises(ModelRefused):
        store.rollback("transactions")
    assert store.active("transactions") == second
