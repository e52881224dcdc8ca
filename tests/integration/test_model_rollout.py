"""Champion / challenger rollout on the real Redis, real ONNX folders and (for rollback) the
real Kafka: the store's challenger slot, shadow scoring, canary routing, automatic rollback."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import redis

from streamscore.libs.config import Settings
from streamscore.libs.model.safety import ModelRefused
from streamscore.services.model_store import ModelStore, ModelStoreError
from tests.model_folders import blocking, copied, renamed, tamper, trained

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("rollout-models")
    return {
        "v1": trained(root / "v1", "tx-ro-1", seed=1),
        "v2": trained(root / "v2", "tx-ro-2", seed=2),
        "bad": blocking(root / "bad", "tx-ro-blocks"),
    }


@pytest.fixture
def store(stack_settings: Settings) -> ModelStore:
    client = redis.Redis.from_url(stack_settings.redis_url or "")
    return ModelStore(client, namespace=f"it-ro-{uuid.uuid4().hex[:8]}")


def test_store_challenger_set_verified_cleared_and_promoted(
    store: ModelStore, models: dict[str, Path], tmp_path: Path
) -> None:
    s = "transactions"
    store.promote(s, models["v1"], "ops", "first")
    assert store.challenger(s) is None
    ref = store.set_challenger(
        s, models["v2"], mode="shadow", share=0.0, by="ml", reason="retrained"
    )
    ch = store.challenger(s)
    assert ch is not None and ch.ref == ref and ch.mode == "shadow"
    assert (ref.version, ref.promoted_by, ref.reason) == ("tx-ro-2", "ml", "retrained")
    # Same model again: its mode and share change.
    store.set_challenger(s, models["v2"], mode="canary", share=0.3, by="ml", reason="canary")
    ch = store.challenger(s)
    assert ch is not None and (ch.mode, ch.share) == ("canary", 0.3)
    # Refused like a promotion: nothing changes.
    with pytest.raises(ModelRefused, match="hash_mismatch"):
        store.set_challenger(
            s,
            tamper(copied(models["v2"], tmp_path / "t")),
            mode="shadow",
            share=0,
            by="a",
            reason="b",
        )
    with pytest.raises(ModelStoreError, match="active model"):
        store.set_challenger(s, models["v1"], mode="shadow", share=0, by="a", reason="b")
    with pytest.raises(ModelStoreError, match="share"):
        store.set_challenger(s, models["v2"], mode="canary", share=1.5, by="a", reason="b")
    with pytest.raises(ModelStoreError, match="mode"):
        store.set_challenger(s, models["v2"], mode="live", share=0.1, by="a", reason="b")  # type: ignore[arg-type]
    assert store.challenger(s) == ch
    # Compare-and-delete: another version's clear does nothing.
    assert store.clear_challenger(s, by="judge", reason="x", version="tx-other") is None
    assert store.clear_challenger(s, by="judge", reason="p99", version="tx-ro-2") == ch
    assert store.challenger(s) is None
    assert store.clear_challenger(s, by="judge", reason="again") is None
    # Promotion: the challenger becomes active and is pushed to the history.
    store.set_challenger(
        s,
        renamed(models["v2"], tmp_path / "v3", "tx-ro-3"),
        mode="canary",
        share=0.5,
        by="ml",
        reason="r",
    )
    promoted = store.promote_challenger(s, by="lead", reason="canary good")
    assert promoted.version == "tx-ro-3" and promoted.promoted_by == "lead"
    assert store.active(s) == promoted and store.history(s)[0] == promoted
    assert store.challenger(s) is None
    assert [e.action for e in store.challenger_log(s)][:2] == ["promoted", "cleared"]
    with pytest.raises(ModelStoreError, match="no challenger"):
        store.promote_challenger(s, by="lead", reason="again")
