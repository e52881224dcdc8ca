"""Schemathesis against the API's own OpenAPI document: no 5xx, whatever the input (FAULTS S3).

Every operation (sync scoring of every stream, administration, health) is
called with generated valid and invalid requests — positive and negative
generation modes — and a token holding every scope, so the requests reach the
handlers instead of stopping at authentication. The app runs on its own Redis
database and topic prefix: whatever the fuzzer activates or rolls back stays
there.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from prometheus_client import CollectorRegistry
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from streamscore.libs.config import Settings
from streamscore.libs.topics import STREAMS, TopicSpec
from streamscore.services.api.app import create_app
from streamscore.services.api.auth import SCOPES, issue_token
from streamscore.services.api.score import build_sync_scoring
from streamscore.services.clients import make_admin
from streamscore.services.scorer import load_model
from streamscore.services.topics_admin import create_topics
from tests.processor_runs import redis_db_url

pytestmark = pytest.mark.integration
REDIS_DB = 11
#: Generated requests per operation and generation mode (derandomised: the same every run).
EXAMPLES = 40


@pytest.fixture(scope="module")
def fuzz_app(
    stack_settings: Settings, transaction_model_dir: Path
) -> Iterator[tuple[FastAPI, str]]:
    url = redis_db_url(stack_settings.redis_url or "", REDIS_DB)
    r = redis.Redis.from_url(url)
    r.flushdb()
    settings = stack_settings.model_copy(update={"redis_url": url})
    prefix = f"fuzz-{uuid.uuid4().hex[:8]}."
    create_topics(
        make_admin(settings),
        [
            TopicSpec(prefix + t, 1, 1)
            for s in STREAMS.values()
            for t in (s.decision_topic, s.scored_log_topic)
        ],
    )
    registry = CollectorRegistry()
    scoring = build_sync_scoring(
        settings,
        {"transactions": load_model(transaction_model_dir, "transactions")},
        topic_prefix=prefix,
        registry=registry,
    )
    app = create_app(
        settings, r, kafka_bootstrap=settings.kafka_bootstrap, registry=registry, scoring=scoring
    )
    token = issue_token(settings.api_signing_key.get_secret_value(), "fuzzer", sorted(SCOPES))
    try:
        yield app, token
    finally:
        scoring.close()


# Hypothesis is driven directly (one strategy per operation and generation mode):
# schemathesis' pytest plugin does not run under pytest 9 yet.
@pytest.mark.parametrize("mode", list(GenerationMode), ids=lambda m: m.value)
def test_no_server_errors(fuzz_app: tuple[FastAPI, str], mode: GenerationMode) -> None:
    app, token = fuzz_app
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [op.ok() for op in schema.get_all_operations()]
    assert any(op.path == "/v1/score/transactions" for op in operations)
    failures: list[str] = []
    for op in operations:

        @given(case=op.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def run(case: Any) -> None:
            case.call_and_validate(
                headers={"Authorization": f"Bearer {token}"}, checks=[not_a_server_error]
            )

        try:
            run()
        except Unsatisfiable:  # nothing to make invalid (no parameters, no body): negative only
            assert mode is GenerationMode.NEGATIVE, op.path
        except Exception as exc:  # collect every operation's failure, then report all
            failures.append(f"{op.method.upper()} {op.path}: {exc}")
    assert not failures, "\n".join(failures)
