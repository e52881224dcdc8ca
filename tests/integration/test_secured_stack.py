"""The pipeline through a SASL/SCRAM Kafka and a password-protected TLS Redis (issue #9).

A private Kafka whose only client listener is ``SASL_PLAINTEXT`` with
``SCRAM-SHA-256`` (users created when the storage is formatted) and a private
Redis whose ``default`` user is off, with one ACL user and a password, reached
only over TLS (``rediss://``, a throwaway CA made with ``openssl``); both on free
loopback ports in a temporary folder, stopped afterwards (see
:mod:`tests.secured_stack`). The processes get their credentials from the
environment exactly as a deployment would (``STREAMSCORE_KAFKA_*``,
``STREAMSCORE_REDIS_*``).

Checked: the fused pipeline (confluent-kafka + redis.asyncio) decides every
published event, and the faust feature processor (aiokafka) emits every
feature record; wrong Kafka or Redis credentials stop a service at once with
one message naming the authentication refusal (exit 2, not a hang); no
password appears in any process output.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from streamscore.libs.config import Settings
from streamscore.libs.contracts.events import Transaction
from streamscore.libs.simulator.scenario import get
from streamscore.libs.topics import STREAMS, TopicSpec
from streamscore.services.clients import make_admin, make_consumer, make_producer
from streamscore.services.sim_producer import publish
from streamscore.services.topics_admin import create_topics
from tests.processor_runs import create_stream_topics, start_cli, stop
from tests.secured_stack import KAFKA_PASSWORD, REDIS_PASSWORD, SecuredStack, secured_stack

pytestmark = pytest.mark.integration
S = STREAMS["transactions"]
N_EVENTS = 300
#: Longest a service may take to refuse wrong credentials before it counts as a hang.
REFUSAL_GUARD_S = 90


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredStack]:
    with secured_stack(tmp_path_factory.mktemp("secured"), redis_tls=True) as st:
        yield st


class _EventId(msgspec.Struct):
    event_id: str


class _FeatureRecord(msgspec.Struct):
    event: _EventId


def _read_ids(settings: Settings, topic: str, n: int, *, features: bool = False) -> set[str]:
    """Event ids on ``topic``, read from the start with the secured settings, until ``n``."""
    consumer = make_consumer(settings, group_id=f"it-secured-{uuid.uuid4().hex[:8]}")
    consumer.subscribe([topic])
    ids: set[str] = set()
    idle = 0
    try:
        while len(ids) < n and idle < 240:  # ~120 s without a new record: give up
            batch = [m for m in consumer.consume(1000, timeout=0.5) if m.error() is None]
            idle = 0 if batch else idle + 1
            for m in batch:
                value = m.value() or b""
                ids.add(
                    msgspec.json.decode(value, type=_FeatureRecord).event.event_id
                    if features
                    else msgspec.json.decode(value, type=_EventId).event_id
                )
    finally:
        consumer.close()
    return ids


def _assert_no_password(*logs: Path) -> None:
    for log in logs:
        text = log.read_text(errors="replace")
        for secret in (KAFKA_PASSWORD, REDIS_PASSWORD):
            assert secret not in text, f"a password is printed in {log.name}"


def test_pipeline_and_processor_run_through_sasl_and_redis_acl_tls(
    stack: SecuredStack, transaction_model_dir: Path, tmp_path: Path
) -> None:
    settings = stack.settings()
    fused, faust_ = f"sec-{uuid.uuid4().hex[:6]}.", f"secf-{uuid.uuid4().hex[:6]}."
    for prefix in (fused, faust_):
        create_stream_topics(settings, "transactions", prefix)
    create_topics(
        make_admin(settings),
        [TopicSpec(fused + t, 3, 1) for t in (S.decision_topic, S.scored_log_topic)],
    )
    records = [
        r
        for r in get("small").only("transactions").with_days(1).records(seed=17)
        if isinstance(r.event, Transaction)
    ][:N_EVENTS]
    sent = {r.event.event_id for r in records}
    pipe_log, proc_log = tmp_path / "pipeline.log", tmp_path / "processor.log"
    common = {"bootstrap": stack.bootstrap, "redis_url": stack.redis_url, "env": stack.env()}
    pipeline = start_cli(
        ["pipeline", "--stream", "transactions", "--topic-prefix", fused,
         "--model", str(transaction_model_dir)],
        log=pipe_log,
        **common,  # type: ignore[arg-type]
    )  # fmt: skip
    processor = start_cli(
        ["processor", "--stream", "transactions", "--topic-prefix", faust_],
        log=proc_log,
        **common,  # type: ignore[arg-type]
    )
    try:
        producer = make_producer(settings, client_id="it-secured")
        for prefix in (fused, faust_):
            publish(records, producer, topic_prefix=prefix, progress=lambda _m: None)
        assert producer.failed == {}, producer.failed
        decided = _read_ids(settings, fused + S.decision_topic, len(sent))
        featured = _read_ids(settings, faust_ + S.feature_topic, len(sent), features=True)
        assert pipeline.poll() is None, pipe_log.read_text()[-3000:]
        assert processor.poll() is None, proc_log.read_text()[-3000:]
    finally:
        stop(pipeline)
        stop(processor)
    print(
        f"\nsecured stack: {len(sent)} events, {len(decided & sent)} decided by the pipeline, "
        f"{len(featured & sent)} featured by the faust processor"
    )
    assert decided == sent, pipe_log.read_text()[-3000:]
    assert featured == sent, proc_log.read_text()[-3000:]
    _assert_no_password(pipe_log, proc_log)


@pytest.mark.parametrize(
    ("command", "wrong", "names"),
    [
        ("pipeline", "kafka", "Kafka at"),
        ("processor", "kafka", "Kafka at"),
        ("pipeline", "redis", "Redis at"),
    ],
)
def test_wrong_credentials_fail_clearly(
    stack: SecuredStack, tmp_path: Path, command: str, wrong: str, names: str
) -> None:
    bad = "wrong-pw-0000"
    env = stack.env(**{f"{wrong}_password": bad})
    log = tmp_path / f"{command}-{wrong}.log"
    proc = start_cli(
        [command, "--stream", "transactions", "--topic-prefix", f"bad-{uuid.uuid4().hex[:6]}."],
        bootstrap=stack.bootstrap,
        redis_url=stack.redis_url,
        log=log,
        env=env,
    )
    try:
        code = proc.wait(timeout=REFUSAL_GUARD_S)
    except subprocess.TimeoutExpired:
        stop(proc)
        pytest.fail(f"{command} with a wrong {wrong} password hangs:\n{log.read_text()[-2000:]}")
    text = log.read_text()
    print(f"\n{command}, wrong {wrong} password: exit {code}: {text.strip().splitlines()[-1]}")
    assert code == 2, text[-2000:]
    assert names in text and "refused authentication" in text, text[-2000:]
    assert bad not in text
    _assert_no_password(log)
