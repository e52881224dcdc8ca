"""A shadow policy on real Redis: the scorer counts its agreement, the API sets and clears it."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import msgspec
import pytest
import redis
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from streamscore.libs.config import Settings
from streamscore.services.api.app import create_app
from streamscore.services.api.auth import issue_token
from streamscore.services.metrics import DecisionMetrics
from streamscore.services.policy_store import SHADOW_KEY, PolicyStore
from streamscore.services.scorer import REPO_POLICIES, Scorer, default_policy
from tests.integration.test_policy_refresh import Constant, _batch, _decisions

pytestmark = pytest.mark.integration


def test_scorer_counts_shadow_agreement_and_keeps_the_active_decisions(
    stack_settings: Settings,
) -> None:
    client = redis.Redis.from_url(stack_settings.redis_url or "")
    store = PolicyStore(client, namespace=f"it-shadow-{uuid.uuid4().hex[:6]}")
    base = default_policy("transactions")  # Constant scores 0.5: step_up
    registry = CollectorRegistry()
    scorer = Scorer(
        "transactions",
        policy=base,
        model=Constant(),
        metrics=DecisionMetrics(registry),
        policy_source=lambda: store.active("transactions"),
        shadow_source=lambda: store.shadow("transactions"),
        policy_refresh_s=0.0,
    )

    def count(active: str, shadow: str) -> float:
        labels = {"stream": "transactions", "active": active, "shadow": shadow}
        return registry.get_sample_value("streamscore_shadow_decisions_total", labels) or 0.0

    # 1. No shadow: nothing counted.
    scorer.handle(_batch(20, 1))
    assert scorer.shadow_agreement == {}
    # 2. A shadow with higher thresholds: it would approve what the active policy steps up.
    stricter = msgspec.structs.replace(base, version="shadow-1", thresholds=[0.6, 0.9])
    store.set_shadow(stricter)
    assert store.shadow("transactions") == stricter
    decisions = _decisions(scorer.handle(_batch(30, 2)))
    assert {(d.decision, d.policy_version) for d in decisions} == {("step_up", base.version)}
    assert count("step_up", "approve") == 30
    assert scorer.budget.granted_total == 0  # the active budget is untouched
    # 3. A shadow that agrees is counted as agreement.
    store.set_shadow(msgspec.structs.replace(base, version="shadow-2"))
    scorer.handle(_batch(10, 3))
    assert count("step_up", "step_up") == 10 and count("step_up", "approve") == 30
    # 4. Cleared: counting stops, decisions still the active policy's.
    assert store.clear_shadow("transactions")
    decisions = _decisions(scorer.handle(_batch(10, 4)))
    assert {d.decision for d in decisions} == {"step_up"}
    assert count("step_up", "step_up") == 10 and scorer.shadow is None
    # 5. A shadow document for another stream is refused by the scorer (and counted).
    store.client.set(
        SHADOW_KEY.format(ns=store.ns, stream="transactions"),
        msgspec.json.encode(msgspec.structs.replace(base, version="x", stream="logins")),
    )
    scorer.handle(_batch(5, 5))
    assert scorer.shadow is None and scorer.shadow_errors == 1


@pytest.fixture
def api(stack_settings: Settings) -> Iterator[tuple[TestClient, str]]:
    client = redis.Redis.from_url(stack_settings.redis_url or "")
    app = create_app(stack_settings, client, kafka_bootstrap=stack_settings.kafka_bootstrap)
    with TestClient(app) as tc:
        yield tc, stack_settings.api_signing_key.get_secret_value()


def test_shadow_routes_need_admin_validate_and_are_audited(api: tuple[TestClient, str]) -> None:
    tc, key = api
    doc = json.loads((REPO_POLICIES / "logins.json").read_text())
    version = f"logins-shadow-{uuid.uuid4().hex[:6]}"
    path = "/v1/admin/policies/logins/shadow"
    admin = {"Authorization": f"Bearer {issue_token(key, 'ops-shadow', ['admin'])}"}
    scorer_only = {"Authorization": f"Bearer {issue_token(key, 'svc', ['score'])}"}
    assert tc.put(path, json={**doc, "version": version}).status_code == 401
    assert tc.put(path, json={**doc, "version": version}, headers=scorer_only).status_code == 403
    assert tc.delete(path).status_code == 401
    assert tc.delete(path, headers=scorer_only).status_code == 403
    # Invalid documents and wrong streams: 422, nothing set.
    assert tc.put(path, json={"stream": "logins"}, headers=admin).status_code == 422
    tx = json.loads((REPO_POLICIES / "transactions.json").read_text())
    assert tc.put(path, json=tx, headers=admin).status_code == 422
    bad = {**doc, "version": version, "thresholds": [0.9, 0.1]}
    assert tc.put(path, json=bad, headers=admin).status_code == 422
    assert tc.put("/v1/admin/policies/nope/shadow", json=doc, headers=admin).status_code == 404
    # Set, listed, cleared; each applied change audited with its actor.
    r = tc.put(path, json={**doc, "version": version}, headers=admin)
    assert r.status_code == 201 and r.json() == {"shadow": version}
    assert tc.get("/v1/admin/policies", headers=admin).json()["logins"]["shadow"] == version
    assert tc.delete(path, headers=admin).json() == {"shadow": None}
    assert tc.get("/v1/admin/policies", headers=admin).json()["logins"]["shadow"] is None
    events = tc.get("/v1/admin/audit?n=50", headers=admin).json()
    mine = [(e["action"], e["detail"]["version"]) for e in events if e["actor"] == "ops-shadow"]
    assert mine[:2] == [("policy.shadow_clear", version), ("policy.shadow", version)]
