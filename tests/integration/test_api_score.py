"""``POST /v1/score/<stream>`` on the real stack: the stream path's features, model and policy."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest
import redis
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from streamscore.libs.config import Settings
from streamscore.libs.contracts.base import Event
from streamscore.libs.contracts.codec import decode, encode
from streamscore.libs.contracts.scored import ScoredEvent
from streamscore.libs.features.definitions import model_features
from streamscore.libs.features.offline import OfflineFeatures
from streamscore.libs.simulator.scenario import get
from streamscore.libs.topics import STREAMS, TopicSpec
from streamscore.services.api.app import create_app
from streamscore.services.api.auth import issue_token
from streamscore.services.api.score import build_sync_scoring
from streamscore.services.clients import make_admin
from streamscore.services.scorer import default_policy, load_model
from streamscore.services.topics_admin import create_topics
from tests.processor_runs import read_all, redis_db_url

pytestmark = pytest.mark.integration
REDIS_DB = 10
S = STREAMS["transactions"]
NAMES = model_features("transactions")


@dataclass
class Api:
    client: TestClient
    prefix: str
    redis: redis.Redis
    token: str
    settings: Settings
    registry: CollectorRegistry


def _events(n: int, seed: int = 7) -> list[Event]:
    scenario = get("small").only("transactions").with_days(3)
    out = [r.event for r in scenario.records(seed=seed) if r.topic == S.input_topic]
    return out[:n]


def _make(settings: Settings, model_dir: Path | None, prefix: str) -> Iterator[Api]:
    registry = CollectorRegistry()
    models = {"transactions": load_model(model_dir, "transactions")} if model_dir else {}
    scoring = build_sync_scoring(settings, models, topic_prefix=prefix, registry=registry)
    r = redis.Redis.from_url(settings.redis_url or "")
    app = create_app(
        settings,
        r,
        kafka_bootstrap=settings.kafka_bootstrap,
        registry=registry,
        scoring=scoring,
    )
    key = settings.api_signing_key.get_secret_value()
    try:
        with TestClient(app) as tc:
            yield Api(tc, prefix, r, issue_token(key, "shop", ["score"]), settings, registry)
    finally:
        scoring.close()


@pytest.fixture
def api_env(stack_settings: Settings) -> tuple[Settings, str, redis.Redis]:
    url = redis_db_url(stack_settings.redis_url or "", REDIS_DB)
    r = redis.Redis.from_url(url)
    r.flushdb()
    prefix = f"api-{uuid.uuid4().hex[:8]}."
    create_topics(
        make_admin(stack_settings),
        [TopicSpec(prefix + t, 2, 1) for t in (S.decision_topic, S.scored_log_topic)],
    )
    return stack_settings.model_copy(update={"redis_url": url}), prefix, r


@pytest.fixture
def api(api_env: tuple[Settings, str, redis.Redis], transaction_model_dir: Path) -> Iterator[Api]:
    settings, prefix, _ = api_env
    yield from _make(settings, transaction_model_dir, prefix)


def _post(api: Api, body: Any, token: str | None = None) -> Any:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if token is not False:
        headers["Authorization"] = f"Bearer {token or api.token}"
    return api.client.post("/v1/score/transactions", content=data, headers=headers)


def _json(ev: Event) -> Any:
    return json.loads(encode(ev))


def _snapshot(r: redis.Redis) -> dict[bytes, Any]:
    return {k: r.hgetall(k) for k in r.scan_iter(match="ss:w:*", count=1000)}


def test_sync_scoring_runs_the_stream_path(api: Api) -> None:
    events = _events(400)
    single, batched = events[:150], events[150:]
    decisions: list[dict[str, Any]] = []
    for ev in single:
        r = _post(api, _json(ev))
        assert r.status_code == 200, r.text
        decisions.append(r.json())
    for i in range(0, len(batched), 50):
        r = _post(api, [_json(ev) for ev in batched[i : i + 50]])
        assert r.status_code == 200, r.text
        decisions += r.json()["decisions"]

    # 1. One decision per event, in order, by the model and the shipped policy.
    assert [d["event_id"] for d in decisions] == [ev.event_id for ev in events]
    assert {d["model_version"] for d in decisions} == {"tx-fraud-it-1"}
    assert {d["policy_version"] for d in decisions} == {default_policy("transactions").version}
    assert all(d["score"] is not None and not d["degraded"] for d in decisions)

    # 2. The model saw the offline computation's features (the stream path's, float32).
    logged = {
        rec.event_id: rec
        for m in read_all(api.settings.kafka_bootstrap or "", api.prefix + S.scored_log_topic, 400)
        for rec in [decode(ScoredEvent, m.value(), max_bytes=1 << 20)]
    }
    assert set(logged) == {ev.event_id for ev in events}
    off = OfflineFeatures("transactions")
    for ev in events:
        want = off.event(ev).values
        got = logged[ev.event_id].values
        for name, value in zip(NAMES, got, strict=True):
            expected = want[name]
            if expected is None:
                assert value is None, (ev.event_id, name)
            else:
                assert value is not None, (ev.event_id, name)
                assert value == pytest.approx(float(np.float32(expected)), rel=1e-6, abs=1e-6)

    # 3. The decisions topic holds what the callers were told.
    on_topic = {
        json.loads(m.value())["event_id"]: json.loads(m.value())
        for m in read_all(api.settings.kafka_bootstrap or "", api.prefix + S.decision_topic, 400)
    }
    assert on_topic == {d["event_id"]: d for d in decisions}

    # 4. A retried request changes no aggregate and gets the same decisions.
    before = _snapshot(api.redis)
    again = _post(api, [_json(ev) for ev in events[:60]]).json()["decisions"]
    assert _snapshot(api.redis) == before
    for a, b in zip(again, decisions[:60], strict=True):
        assert {k: v for k, v in a.items() if k != "decided_at"} == {
            k: v for k, v in b.items() if k != "decided_at"
        }
    text = api.client.get("/metrics").text
    assert 'streamscore_api_scored_events_total{features="store",stream="transactions"} 460.0' in (
        text
    )


def test_bad_requests_are_clear_4xx_and_change_nothing(api: Api) -> None:
    ev = _json(_events(3, seed=11)[0])
    key = api.settings.api_signing_key.get_secret_value()
    assert _post(api, ev, token=False).status_code == 401  # type: ignore[arg-type]
    assert _post(api, ev, token=issue_token(key, "ops", ["admin"])).status_code == 403
    cases: dict[str, tuple[Any, str]] = {
        "missing field": ({k: v for k, v in ev.items() if k != "amount"}, "missing_field"),
        "wrong type": ({**ev, "amount": "12.5"}, "wrong_type"),
        "unknown field": ({**ev, "coupon": "x"}, "extra_field"),
        "amount out of range": ({**ev, "amount": 1e308}, ""),
        "not json": (b"{not json", ""),
        "a string": (b'"hello"', ""),
    }
    for name, (body, reason) in cases.items():
        r = _post(api, body)
        assert r.status_code == 422, (name, r.status_code, r.text)
        errors = r.json().get("errors")
        if reason:
            assert errors[0]["reason"] == reason, (name, errors)
    # Dated far ahead of the clock (it would move the customer's windows to 2099) or in 1970.
    for when, rule in (("2099-01-01T00:00:00Z", "event_time_future"), ("1970-01-01T00:00:00Z",
                       "event_time_past")):  # fmt: skip
        r = _post(api, {**ev, "event_time": when})
        assert r.status_code == 422, (when, r.text)
        (error,) = r.json()["errors"]
        assert (error["reason"], error["field"]) == ("semantic", "$.event_time"), error
        assert error["detail"].startswith(rule), error
    # One bad event refuses its whole batch: the good ones are not applied either.
    good = [_json(e) for e in _events(3, seed=12)]
    r = _post(api, [*good, {**good[0], "event_id": "x", "amount": -1}])
    assert r.status_code == 422
    assert [e["index"] for e in r.json()["errors"]] == [3]
    assert _snapshot(api.redis) == {}
    assert _post(api, []).status_code == 422
    assert _post(api, [ev] * 257).status_code == 422
    big = json.dumps({**ev, "pad": "x" * (300 * 1024)}).encode()
    assert _post(api, big).status_code == 413


def test_store_unavailable_decides_on_the_degraded_path(
    api_env: tuple[Settings, str, redis.Redis], transaction_model_dir: Path
) -> None:
    settings, prefix, r = api_env
    # Redis for the feature state at a closed loopback port; auth keeps the real one.
    dead = settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"})
    registry = CollectorRegistry()
    scoring = build_sync_scoring(
        dead,
        {"transactions": load_model(transaction_model_dir, "transactions")},
        topic_prefix=prefix,
        registry=registry,
    )
    app = create_app(settings, r, registry=registry, scoring=scoring)
    token = issue_token(settings.api_signing_key.get_secret_value(), "shop", ["score"])
    try:
        with TestClient(app) as tc:
            events = _events(20, seed=13)
            resp = tc.post(
                "/v1/score/transactions",
                content=msgspec.json.encode([json.loads(encode(e)) for e in events]),
                headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            )
            assert resp.status_code == 200, resp.text
            decisions = resp.json()["decisions"]
            assert len(decisions) == 20
            for d in decisions:
                assert d["degraded"] and d["degraded"].startswith("features:"), d
                assert d["feature_statuses"] == {"customer_tx": "ERROR", "terminal_risk": "ERROR"}
                assert d["decision"] != "approve" or d["policy_path"].startswith("degraded")
            ready = tc.get("/readyz").json()
            assert ready["models"] == {s: None for s in STREAMS} | {"transactions": "tx-fraud-it-1"}
    finally:
        scoring.close()
