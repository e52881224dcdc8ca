"""The joiner's crash windows, hit exactly, and a fenced zombie: nothing lost, nothing twice.

A joiner is built in-process (:func:`make_joiner`) and made to fail at one step
of its protocol; it is then abandoned as a killed process would be (its
consumer closed without committing, its folder lock released, its producer
left with whatever transaction it had open), and a new joiner recovers:

* ``after_state_commit``: the batch's state and outbox blob are in Redis, no
  Kafka transaction began: the blob is produced by the next joiner.
* ``before_txn_commit``: dataset files written and examples produced in an open
  transaction that never commits: the next joiner's ``init_transactions``
  aborts it, recovery removes the files, the blobs are produced again.
* ``after_txn_commit``: committed, but the blobs are still in the outbox: the
  next joiner sees the committed offsets reach their tags and drops them.
"""

from __future__ import annotations

import random
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaException, TopicPartition

from streamscore.libs.config import Settings
from streamscore.libs.labels.spec import default_spec
from streamscore.services.join_state import FencedError
from streamscore.services.label_joiner import LabelJoiner, make_joiner
from tests.joiner_runs import (
    JOINER_ARGS,
    STREAM,
    check,
    dataset_rows,
    joiner_topics,
    produce_inputs,
    read_examples_topic,
    topic_rows,
)
from tests.label_join_cases import scenario
from tests.processor_runs import redis_db_url

pytestmark = pytest.mark.integration
ARGS = dict(zip(JOINER_ARGS[::2], JOINER_ARGS[1::2], strict=True))
SPEC = default_spec(
    STREAM,
    horizon=ARGS["--horizon"],
    grace=ARGS["--grace"],
    orphan_ttl=ARGS["--orphan-ttl"],
    lateness=ARGS["--lateness"],
    bucket=ARGS["--bucket"],
)


class Crash(RuntimeError):
    """The injected failure."""


class CrashingProducer:
    """Forwards to a transactional producer; fails around the first ``commit_transaction``
    (after the first one) whose transaction carries examples (``armed()``)."""

    def __init__(self, inner: Any, armed: Any, *, after: bool) -> None:
        self.inner, self.armed, self.after, self.calls = inner, armed, after, 0

    def commit_transaction(self, *args: Any) -> None:
        self.calls += 1
        fire = self.calls >= 2 and self.armed()
        if fire and not self.after:
            raise Crash("before commit_transaction")
        self.inner.commit_transaction(*args)
        if fire:
            raise Crash("after commit_transaction")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def build(settings: Settings, prefix: str, out: Path | None) -> LabelJoiner:
    """A joiner whose caught-up partitions stop holding its clock at once (``idle_s=0``):
    every input here is produced before the joiner reads it, so nothing can land behind
    the end offsets it saw, and :func:`drain` may return as soon as the tick is read."""
    return make_joiner(
        settings, STREAM, SPEC, topic_prefix=prefix, out=out, commit_interval_s=0.05,
        max_batch=40, idle_s=0.0,
    )  # fmt: skip


def drain(j: LabelJoiner, timeout_s: float = 40) -> None:
    """Step until every input is read, committed and the outbox is empty."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if j.step() == 0:
            j.commit_cycle()
            ends = {
                tp: j.consumer.get_watermark_offsets(TopicPartition(*tp), timeout=10)[1]
                for tp in j._partitions
            }
            if (
                all(j.committed.get(tp, 0) >= hi for tp, hi in ends.items())
                and not j.state.outbox()
            ):
                return
    raise AssertionError("the joiner did not drain")


def abandon(j: LabelJoiner) -> None:
    """What a SIGKILL leaves: no commit, the folder lock released by the kernel."""
    j.consumer.close()
    if j.dataset is not None:
        j.dataset.unlock()


@pytest.fixture
def settings(stack_settings: Settings) -> Settings:
    assert stack_settings.redis_url
    return stack_settings.model_copy(
        update={"redis_url": redis_db_url(stack_settings.redis_url, 9)}
    )


@pytest.mark.parametrize("window", ["after_state_commit", "before_txn_commit", "after_txn_commit"])
def test_a_crash_in_each_window_loses_and_duplicates_nothing(
    settings: Settings, tmp_path: Path, window: str
) -> None:
    prefix = f"jnr-{uuid.uuid4().hex[:8]}-"
    topics = joiner_topics(settings, prefix)
    sc = scenario(random.Random(5), 300)
    *body, tick = sc.inputs
    produce_inputs(settings, topics, body)
    out = tmp_path / "examples"
    first = build(settings, prefix, out)
    if window == "after_state_commit":
        real, calls = first.state.commit, [0]

        def commit(view: Any, blob: Any) -> None:
            real(view, blob)
            calls[0] += 1
            if calls[0] >= 3 and blob is not None:
                raise Crash("after the state commit")

        first.state.commit = commit  # type: ignore[method-assign]
    else:
        first.producer = CrashingProducer(  # type: ignore[assignment]
            first.producer, lambda: bool(first.state.outbox()), after=window == "after_txn_commit"
        )
    first.start()
    deadline = time.monotonic() + 20
    with pytest.raises(Crash):
        while time.monotonic() < deadline:
            first.step()
    outbox_left = len(first.state.outbox())
    abandon(first)
    second = build(settings, prefix, out)
    second.start()
    if window == "after_txn_commit":
        assert second.stats.recovered_blobs > 0  # committed, then found still in the outbox
    if window == "before_txn_commit":
        assert second.stats.removed_files > 0  # written for a transaction that never committed
    if window == "after_state_commit":
        assert outbox_left > 0
    drain(second)
    produce_inputs(settings, topics, [tick])
    drain(second)
    second.close()
    examples = read_examples_topic(settings.kafka_bootstrap or "", topics.examples)
    figures = check(topic_rows(examples), sc)
    assert (figures.lost, figures.duplicates, figures.wrong_final) == (0, 0, 0), figures
    assert (figures.bad_sequences, figures.unexpected) == (0, 0), figures
    assert sorted(dataset_rows(out)) == sorted(topic_rows(examples))


def test_a_second_joiner_fences_the_first(settings: Settings) -> None:
    prefix = f"jnz-{uuid.uuid4().hex[:8]}-"
    topics = joiner_topics(settings, prefix)
    sc = scenario(random.Random(9), 200)
    *body, tick = sc.inputs
    produce_inputs(settings, topics, body)
    zombie = build(settings, prefix, None)
    zombie.start()
    for _ in range(5):
        zombie.step()
    successor = build(settings, prefix, None)
    successor.start()  # new transactional epoch in Kafka, new epoch in Redis
    deadline = time.monotonic() + 20
    with pytest.raises((FencedError, KafkaException)):
        while time.monotonic() < deadline:
            zombie.step()
            zombie.commit_cycle()
    abandon(zombie)
    drain(successor)
    produce_inputs(settings, topics, [tick])
    drain(successor)
    successor.close()
    figures = check(
        topic_rows(read_examples_topic(settings.kafka_bootstrap or "", topics.examples)), sc
    )
    assert (figures.lost, figures.duplicates, figures.wrong_final) == (0, 0, 0), figures
