"""The HTTP API against the real Redis: authentication, scopes, audit, limits (FAULTS S1-S6)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator

import jwt
import pytest
import redis
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi.testclient import TestClient

from streamscore.libs.config import Settings
from streamscore.services.api.app import create_app
from streamscore.services.api.auth import issue_token
from streamscore.services.scorer import REPO_POLICIES

pytestmark = pytest.mark.integration


@pytest.fixture
def api(stack_settings: Settings) -> Iterator[tuple[TestClient, str]]:
    client = redis.Redis.from_url(stack_settings.redis_url or "")
    app = create_app(stack_settings, client, kafka_bootstrap=stack_settings.kafka_bootstrap)
    with TestClient(app) as tc:
        yield tc, stack_settings.api_signing_key.get_secret_value()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _admin_routes(tc: TestClient) -> list[tuple[str, str]]:
    """Every admin route and method, from the app's own OpenAPI inventory."""
    out = []
    for path, ops in tc.app.openapi()["paths"].items():  # type: ignore[attr-defined]
        if path.startswith("/v1/admin"):
            concrete = path.replace("{stream}", "transactions").replace("{token_id}", "x")
            out += [(m.upper(), concrete) for m in ops]
    return out


def test_every_admin_route_needs_an_admin_token(api: tuple[TestClient, str]) -> None:
    tc, key = api
    routes = _admin_routes(tc)
    assert len(routes) >= 6
    score_only = issue_token(key, "scoring-client", ["score"])
    for method, path in routes:
        body = {} if method in ("PUT", "PATCH") else None
        assert tc.request(method, path, json=body).status_code == 401, (method, path)
        assert tc.request(method, path, json=body, headers=bearer(score_only)).status_code == 403


def test_bad_tokens_are_refused(api: tuple[TestClient, str]) -> None:
    tc, key = api
    now = int(time.time())
    claims = {"sub": "mallory", "scopes": ["admin"], "jti": uuid.uuid4().hex}
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    bad = {
        "expired": jwt.encode({**claims, "exp": now - 10}, key, algorithm="HS256"),
        "alg none": jwt.encode({**claims, "exp": now + 60}, None, algorithm="none"),
        "wrong key": jwt.encode({**claims, "exp": now + 60}, "x" * 48, algorithm="HS256"),
        "RS256": jwt.encode({**claims, "exp": now + 60}, rsa_key, algorithm="RS256"),
        "no exp": jwt.encode(claims, key, algorithm="HS256"),
        "garbage": "not.a.token",
    }
    for name, token in bad.items():
        r = tc.get("/v1/admin/policies", headers=bearer(token))
        assert r.status_code == 401, name
    good = issue_token(key, "ops", ["admin"])
    assert tc.get("/v1/admin/policies", headers=bearer(good)).status_code == 200
    jti = jwt.decode(good, key, algorithms=["HS256"])["jti"]
    assert tc.post(f"/v1/admin/tokens/{jti}/revoke", headers=bearer(good)).status_code == 200
    assert tc.get("/v1/admin/policies", headers=bearer(good)).status_code == 401


def test_policy_change_rollback_and_audit(api: tuple[TestClient, str]) -> None:
    tc, key = api
    h = bearer(issue_token(key, "ops-alice", ["admin"]))
    before = len(tc.get("/v1/admin/audit?n=1000", headers=h).json())
    doc = json.loads((REPO_POLICIES / "logins.json").read_text())
    v1, v2, v3 = (f"logins-it-{uuid.uuid4().hex[:6]}-{i}" for i in range(3))
    assert (
        tc.put("/v1/admin/policies/logins", json={**doc, "version": v1}, headers=h).status_code
        == 201
    )
    assert (
        tc.put("/v1/admin/policies/logins", json={**doc, "version": v2}, headers=h).status_code
        == 201
    )
    r = tc.patch(
        "/v1/admin/policies/logins/thresholds",
        json={"version": v3, "thresholds": [0.4, 0.95]},
        headers=h,
    )
    assert r.status_code == 200 and r.json()["thresholds"] == [0.4, 0.95]
    assert tc.get("/v1/admin/policies", headers=h).json()["logins"]["active"] == v3
    assert tc.post("/v1/admin/policies/logins/rollback", headers=h).json()["active"] == v2
    # Invalid changes are 4xx with a reason, never applied, never 5xx.
    bad = tc.patch(
        "/v1/admin/policies/logins/thresholds",
        json={"version": "x", "thresholds": [0.9, 0.1]},
        headers=h,
    )
    assert bad.status_code == 422 and "increase" in bad.json()["detail"]
    assert (
        tc.put("/v1/admin/policies/logins", json={"stream": "logins"}, headers=h).status_code == 422
    )
    assert tc.put("/v1/admin/policies/nope", json=doc, headers=h).status_code == 404
    # Every change that applied wrote exactly one audit event, with its actor.
    events = tc.get("/v1/admin/audit?n=1000", headers=h).json()[
        : len(tc.get("/v1/admin/audit?n=1000", headers=h).json()) - before
    ]
    actions = [
        (e["action"], e["detail"].get("version")) for e in events if e["actor"] == "ops-alice"
    ]
    assert actions == [
        ("policy.rollback", v2),
        ("policy.thresholds", v3),
        ("policy.activate", v2),
        ("policy.activate", v1),
    ]


def test_body_limits_and_health(api: tuple[TestClient, str]) -> None:
    tc, key = api
    h = bearer(issue_token(key, "ops", ["admin"]))
    huge = b"{" + b'"a": 1, ' * 40_000 + b'"b": 2}'
    r = tc.put(
        "/v1/admin/policies/logins", content=huge, headers={**h, "Content-Type": "application/json"}
    )
    assert r.status_code == 413
    nested = b"[" * 5000 + b"]" * 5000
    r = tc.put(
        "/v1/admin/policies/logins",
        content=nested,
        headers={**h, "Content-Type": "application/json"},
    )
    assert 400 <= r.status_code < 500
    assert tc.get("/healthz").json() == {"status": "ok"}
    ready = tc.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"redis": True, "kafka": True, "models": True}
    assert "streamscore_" in tc.get("/metrics").text or tc.get("/metrics").status_code == 200
