"""The pipeline through a SASL/SCRAM (and TLS) Kafka and a password-protected TLS Redis (#9).

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
feature record, over SASL_PLAINTEXT and (the processor) over SASL_SSL; wrong
Kafka or Redis credentials, or a CA that did not sign the broker's certificate,
stop a service at once with one message naming the refusal (exit 2, not a
hang); no password appears in any process output.
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
from tests.secured_stack import (
    KAFKA_PASSWORD,
    REDIS_PASSWORD,
    SecuredStack,
    make_ca,
    secured_stack,
)

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


def test_processor_over_sasl_ssl(stack: SecuredStack, tmp_path: Path) -> None:
    """The faust processor (aiokafka, TLS context from the CA file) over the SASL_SSL listener.

    The test's own producer and consumer (confluent-kafka) use the same listener, so
    both client libraries verify the broker's certificate against the CA.
    """
    settings = stack.settings(kafka_tls=True)
    prefix = f"secs-{uuid.uuid4().hex[:6]}."
    create_stream_topics(settings, "transactions", prefix)
    records = [
        r
        for r in get("small").only("transactions").with_days(1).records(seed=19)
        if isinstance(r.event, Transaction)
    ][:N_EVENTS]
    sent = {r.event.event_id for r in records}
    log = tmp_path / "processor-tls.log"
    processor = start_cli(
        ["processor", "--stream", "transactions", "--topic-prefix", prefix],
        bootstrap=stack.tls_bootstrap,
        redis_url=stack.redis_url,
        log=log,
        env=stack.env(kafka_tls=True),
    )
    try:
        producer = make_producer(settings, client_id="it-secured-tls")
        publish(records, producer, topic_prefix=prefix, progress=lambda _m: None)
        assert producer.failed == {}, producer.failed
        featured = _read_ids(settings, prefix + S.feature_topic, len(sent), features=True)
        assert processor.poll() is None, log.read_text()[-3000:]
    finally:
        stop(processor)
    print(f"\nSASL_SSL: {len(featured & sent)} of {len(sent)} events featured by faust")
    assert featured == sent, log.read_text()[-3000:]
    _assert_no_password(log)


@pytest.mark.parametrize(
    ("command", "wrong", "expected"),
    [
        ("pipeline", "kafka", "Kafka at {kafka} refused authentication"),
        ("processor", "kafka", "Kafka at {kafka} refused authentication"),
        ("pipeline", "redis", "Redis at {redis} refused authentication"),
        ("processor", "ca", "Kafka at {kafka} refused the TLS handshake"),
        ("pipeline", "redis-ca", "Redis at {redis} failed the TLS handshake"),
    ],
)
def test_wrong_credentials_fail_clearly(
    stack: SecuredStack, tmp_path: Path, command: str, wrong: str, expected: str
) -> None:
    """Exit 2 with one line naming the refusal; ``*ca``: a CA that did not sign the server's."""
    bad = "wrong-pw-0000"
    if wrong == "ca":
        env = stack.env(kafka_tls=True)
        env["STREAMSCORE_KAFKA_SSL_CA_FILE"] = str(make_ca(tmp_path / "other-ca")[0])
    elif wrong == "redis-ca":
        env = stack.env()
        env["STREAMSCORE_REDIS_SSL_CA_FILE"] = str(make_ca(tmp_path / "other-ca")[0])
    else:
        env = stack.env(kafka_password=bad) if wrong == "kafka" else stack.env(redis_password=bad)
    log = tmp_path / f"{command}-{wrong}.log"
    proc = start_cli(
        [command, "--stream", "transactions", "--topic-prefix", f"bad-{uuid.uuid4().hex[:6]}."],
        bootstrap=env["KAFKA_BOOTSTRAP"],
        redis_url=stack.redis_url,
        log=log,
        env=env,
    )
    try:
        code = proc.wait(timeout=REFUSAL_GUARD_S)
    except subprocess.TimeoutExpired:
        stop(proc)
        pytest.fail(f"{command} with a wrong {wrong} setting hangs:\n{log.read_text()[-2000:]}")
    text = log.read_text()
    print(f"\n{command}, wrong {wrong}: exit {code}: {text.strip().splitlines()[-1]}")
    assert code == 2, text[-2000:]
    shown = expected.format(kafka=env["KAFKA_BOOTSTRAP"], redis=stack.redis_url)
    assert shown in text, text[-2000:]
    assert bad not in text
    _assert_no_password(log)
