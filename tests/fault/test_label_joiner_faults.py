"""FAULTS L4: ``streamscore joiner`` SIGKILLed and restarted mid-run loses and duplicates nothing.

The oracle reads ``examples.labelled`` (``read_committed``) and the Parquet
dataset afterwards and counts, per scored event: **lost** (no example),
**dup** (rows beyond one per ``(event_id, revision)``), **wrong final label**
(the last revision is not the latest label sent) and bad sequences (a primary
that is not revision 0, a correction that changes nothing). The joiner assigns
its partitions itself (no group membership), so a restart needs no session
timeout: four kills fit in a few seconds of run time each. The suite's report
(``tests/fault_report.py``) counts examples per scored event (a revision is its
own output); examples come out when their event matures in event time, so no
per-event latency: the time from each kill to the restarted joiner being ready
stands for recovery.
"""

from __future__ import annotations

import random
import signal
import time
import uuid
from pathlib import Path

import pytest

from streamscore.libs.config import Settings
from tests.fault_report import Out, Sent, fault_report
from tests.joiner_runs import (
    check,
    dataset_rows,
    joiner_topics,
    produce_inputs,
    read_examples_topic,
    start_joiner,
    topic_rows,
    wait_drained,
    wait_matured,
)
from tests.label_join_cases import scenario
from tests.processor_runs import redis_db_url, stop

pytestmark = [pytest.mark.integration, pytest.mark.fault]
KILLS = 4
#: Small batches and frequent transactions: many windows for a kill to land in.
FAST = ("--max-batch", "40", "--commit-interval", "0.1")


def test_sigkill_and_restart_lose_and_duplicate_nothing(
    stack_settings: Settings, tmp_path: Path
) -> None:
    assert stack_settings.redis_url and stack_settings.kafka_bootstrap
    bootstrap = stack_settings.kafka_bootstrap
    settings = stack_settings.model_copy(
        update={"redis_url": redis_db_url(stack_settings.redis_url, 8)}
    )
    prefix = f"jnf-{uuid.uuid4().hex[:8]}-"
    topics = joiner_topics(settings, prefix)
    rng = random.Random(23)
    sc = scenario(rng, 1500)
    *body, tick = sc.inputs
    produce_inputs(settings, topics, body)
    out, log = tmp_path / "examples", tmp_path / "joiner.log"
    t0 = time.monotonic()
    killed_at: list[float] = []
    ready_at: list[float] = []
    for _ in range(KILLS):
        proc = start_joiner(settings, prefix, out, log, *FAST)
        ready_at.append(time.time())
        time.sleep(rng.uniform(0.6, 1.6))
        killed_at.append(time.time())
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    proc = start_joiner(settings, prefix, out, log, *FAST)
    ready_at.append(time.time())
    try:
        wait_drained(bootstrap, topics.group, [topics.scored, topics.labels])
        produce_inputs(settings, topics, [tick])
        wait_drained(bootstrap, topics.group, [topics.scored, topics.labels])
        wait_matured(settings, prefix, sc)
    finally:
        stop(proc)
    assert proc.returncode == 0, log.read_text()[-3000:]
    examples = read_examples_topic(bootstrap, topics.examples)
    figures = check(topic_rows(examples), sc)
    on_disk = check(dataset_rows(out), sc)
    print(f"\nL4 joiner kill -9 x{KILLS} in {time.monotonic() - t0:.1f} s: topic {figures}; "
          f"dataset lost={on_disk.lost} dup={on_disk.duplicates}")  # fmt: skip
    faults = list(zip(killed_at, ready_at[1:], strict=True))
    report = fault_report(
        f"L4 joiner SIGKILL x{KILLS}",
        [Sent(i) for i in sorted(set(sc.events) - {"tick"})],
        [Out(e.event_id, (e.kind, e.label), slot=e.revision) for e in examples],
        faults,
        unit="scored events",
        output_name="example",
        note=(
            f"examples {len(examples):,}, wrong final label {figures.wrong_final}; restarted "
            f"joiner ready {max(end - start for start, end in faults):.1f} s after a kill (worst)"
        ),
    )
    print(report)
    assert report.lost == 0 and report.conflicting == 0
    assert figures.events == 1500
    assert (figures.lost, figures.duplicates, figures.wrong_final) == (0, 0, 0), figures
    assert (figures.bad_sequences, figures.unexpected, figures.early_maturity) == (0, 0, 0)
    assert sorted(dataset_rows(out)) == sorted(topic_rows(examples))
    assert log.read_text().count("ready") == KILLS + 1
