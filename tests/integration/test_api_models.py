"""Model administration over HTTP: admin scope, audit before apply, refusals, models root."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient

from streamscore.libs.config import Settings
from streamscore.libs.topics import STREAMS
from streamscore.services.api.app import create_app
from streamscore.services.api.auth import issue_token
from streamscore.services.model_store import ACTIVE_KEY, HISTORY_KEY
from tests.model_folders import copied, schema_mismatch, tamper, trained
from tests.processor_runs import redis_db_url

pytestmark = pytest.mark.integration
#: A database of its own: no scorer on the shared Redis adopts the models promoted here.
REDIS_DB = 12


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("api-models")
    root = base / "root"
    root.mkdir()
    v1 = trained(root / "v1", "tx-api-1", seed=1)
    v2 = trained(root / "v2", "tx-api-2", seed=2)
    tamper(copied(v2, root / "tampered"))
    schema_mismatch(v2, root / "permuted")
    # A valid model outside the root: refused for where it is, not for what it is.
    outside = copied(v2, base / "outside")
    (root / "escape").symlink_to(outside, target_is_directory=True)
    return {"root": root, "v1": v1, "v2": v2, "outside": outside}


@pytest.fixture
def api(stack_settings: Settings, folders: dict[str, Path]) -> Iterator[tuple[TestClient, str]]:
    client = redis.Redis.from_url(redis_db_url(stack_settings.redis_url or "", REDIS_DB))
    for stream in ("transactions", "logins"):
        for key in (ACTIVE_KEY, HISTORY_KEY):
            client.delete(key.format(ns="streamscore", stream=stream))
    settings = stack_settings.model_copy(update={"models_root": folders["root"]})
    with TestClient(create_app(settings, client)) as tc:
        yield tc, settings.api_signing_key.get_secret_value()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _promote(tc: TestClient, h: dict[str, str], path: str, stream: str = "transactions") -> Any:
    body = {"path": path, "reason": "it"}
    return tc.post(f"/v1/admin/models/{stream}/promote", json=body, headers=h)


def _active(tc: TestClient, h: dict[str, str]) -> str | None:
    active = tc.get("/v1/admin/models", headers=h).json()["transactions"]["active"]
    return None if active is None else str(active["version"])


def test_model_routes_need_an_admin_token(api: tuple[TestClient, str]) -> None:
    tc, key = api
    score_only = bearer(issue_token(key, "scoring-client", ["score"]))
    body = {"path": "v1", "reason": "x"}
    for method, path, json in (
        ("GET", "/v1/admin/models", None),
        ("POST", "/v1/admin/models/transactions/promote", body),
        ("POST", "/v1/admin/models/transactions/rollback", None),
    ):
        assert tc.request(method, path, json=json).status_code == 401, path
        assert tc.request(method, path, json=json, headers=score_only).status_code == 403, path
    admin = bearer(issue_token(key, "ops", ["admin"]))
    assert _active(tc, admin) is None


def test_promote_refuse_roll_back_and_audit(api: tuple[TestClient, str]) -> None:
    tc, key = api
    actor = f"ops-{uuid.uuid4().hex[:8]}"
    h = bearer(issue_token(key, actor, ["admin"]))
    r = _promote(tc, h, "v1")
    assert r.status_code == 200, r.text
    assert r.json()["active"]["version"] == "tx-api-1"
    assert r.json()["active"]["promoted_by"] == actor

    # Refused by the loader: 422 with the reason, the previous model stays active.
    r = _promote(tc, h, "tampered")
    assert r.status_code == 422 and "hash_mismatch" in r.json()["detail"]
    r = _promote(tc, h, "permuted")
    assert r.status_code == 422 and "schema_mismatch" in r.json()["detail"]
    r = _promote(tc, h, "no-such-folder")
    assert r.status_code == 422 and "manifest_missing" in r.json()["detail"]
    r = _promote(tc, h, "v2", stream="logins")  # a transactions model for logins
    assert r.status_code == 422 and "schema_mismatch" in r.json()["detail"]
    assert _active(tc, h) == "tx-api-1"
    # Bad requests.
    assert _promote(tc, h, "v2", stream="nope").status_code == 404
    bad_bodies: list[dict[str, Any]] = [{"path": "v2"}, {"path": "", "reason": "x"}, {}]
    bad_bodies.append({"path": "v2", "reason": "x", "extra": 1})
    for body in bad_bodies:
        r = tc.post("/v1/admin/models/transactions/promote", json=body, headers=h)
        assert r.status_code == 422, body

    assert _promote(tc, h, "v2").status_code == 200
    assert _promote(tc, h, "v2").status_code == 409  # already active
    listing = tc.get("/v1/admin/models", headers=h).json()
    assert set(listing) == set(STREAMS)
    assert [r["version"] for r in listing["transactions"]["history"]] == ["tx-api-2", "tx-api-1"]
    assert listing["logins"] == {"active": None, "history": []}

    r = tc.post("/v1/admin/models/transactions/rollback", headers=h)
    assert r.status_code == 200 and r.json()["active"]["version"] == "tx-api-1"
    assert tc.post("/v1/admin/models/transactions/rollback", headers=h).status_code == 409
    assert tc.post("/v1/admin/models/logins/rollback", headers=h).status_code == 409
    assert tc.post("/v1/admin/models/nope/rollback", headers=h).status_code == 404
    assert _active(tc, h) == "tx-api-1"

    # Exactly one audit entry per change that applied, with its actor; none for refusals.
    events = [e for e in tc.get("/v1/admin/audit?n=1000", headers=h).json() if e["actor"] == actor]
    assert [(e["action"], e["target"], e["detail"]["version"]) for e in events] == [
        ("model.rollback", "transactions", "tx-api-1"),
        ("model.promote", "transactions", "tx-api-2"),
        ("model.promote", "transactions", "tx-api-1"),
    ]
    assert events[0]["detail"]["from"] == "tx-api-2"
    assert events[1]["detail"]["path"].endswith("/v2") and events[1]["detail"]["reason"] == "it"


def test_paths_outside_the_models_root_are_refused(
    api: tuple[TestClient, str], folders: dict[str, Path]
) -> None:
    tc, key = api
    actor = f"ops-traversal-{uuid.uuid4().hex[:8]}"
    h = bearer(issue_token(key, actor, ["admin"]))
    for path in (
        "../outside",
        "v1/../../outside",
        str(folders["outside"]),  # absolute, outside
        "escape",  # a symlink inside the root pointing outside
        "/etc",
    ):
        r = _promote(tc, h, path)
        assert r.status_code == 403, (path, r.text)
        assert "outside the models root" in r.json()["detail"]
    assert _promote(tc, h, "v1\x00x").status_code == 422
    assert _active(tc, h) is None
    # Inside the root, relative or absolute, is fine.
    assert _promote(tc, h, str(folders["v2"])).status_code == 200
    assert _promote(tc, h, "./v1/../v1").status_code == 200
    assert _active(tc, h) == "tx-api-1"
    audit = tc.get("/v1/admin/audit?n=1000", headers=h).json()
    assert [e["detail"]["version"] for e in audit if e["actor"] == actor] == [
        "tx-api-1",
        "tx-api-2",
    ]
