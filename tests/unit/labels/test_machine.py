"""The joiner's state machine against a brute-force oracle, on random interleavings."""

from __future__ import annotations

import itertools
import random
from collections import Counter, defaultdict

import pytest

from streamscore.libs.labels.clock import PartitionClock
from streamscore.libs.labels.facts import LabelRef
from streamscore.libs.labels.machine import JoinMachine
from streamscore.libs.labels.records import LABELLED, MATURED, Emitted, context_of, record_of
from streamscore.libs.labels.spec import HOUR_US, MINUTE_US, JoinSpec, to_us
from streamscore.libs.labels.stores import ContextTable, DictStore
from tests.label_join_cases import (
    DEFAULT_SPEC,
    Input,
    LabelIn,
    Row,
    ScoredIn,
    batches,
    brute_force,
    scenario,
    with_redeliveries,
)

CONTEXTS = ContextTable()


def run(
    machine: JoinMachine,
    store: DictStore,
    batched: list[list[Input]],
    *,
    labels_caught_up: bool = True,
) -> list[Emitted]:
    out: list[Emitted] = []
    clock = PartitionClock(idle_s=0.0)  # only lagging partitions hold
    for batch in batched:
        for x in batch:
            if isinstance(x, LabelIn):
                clock.observe(("labels", 0), x.fact.label.time_us, now=0.0)
            if isinstance(x, ScoredIn):
                rec = record_of(x.event, CONTEXTS.intern(context_of(x.event)))
                out += machine.scored(store, x.event.event_id, rec)[1]
            else:
                out += machine.label(store, x.fact)[1]
        hold = None if labels_caught_up else clock.hold([("labels", 0)], now=0.0)
        out += machine.advance(store, hold_us=hold)[1]
    return out


def rows(emitted: list[Emitted]) -> dict[str, list[Row]]:
    by_id: dict[str, list[Row]] = defaultdict(list)
    for e in emitted:
        label_id = e.label.label_id if e.label is not None else None
        by_id[e.event_id].append((e.event_id, e.kind, e.revision, e.value, label_id, e.late))
    return dict(by_id)


SPECS = [
    DEFAULT_SPEC,
    JoinSpec(10 * HOUR_US, 0, HOUR_US, 30 * MINUTE_US, bucket_us=15 * MINUTE_US),
    JoinSpec(6 * HOUR_US, 6 * HOUR_US, 20 * HOUR_US, 0, bucket_us=2 * HOUR_US),
]


@pytest.mark.parametrize("seed", range(40))
def test_machine_equals_brute_force_on_random_interleavings(seed: int) -> None:
    rng = random.Random(seed)
    spec = SPECS[seed % len(SPECS)]
    sc = scenario(rng, rng.randint(5, 120), horizon_h=spec.horizon_us / HOUR_US)
    batched = batches(rng, sc.inputs, max_size=rng.choice([1, 5, 40]))
    caught_up = seed % 2 == 0
    got = rows(run(JoinMachine(spec), DictStore(), batched, labels_caught_up=caught_up))
    assert got == brute_force(spec, batched, labels_caught_up=caught_up)


def test_a_scored_log_read_ahead_of_its_labels_matures_nothing_early() -> None:
    """A backlog: the whole log is read before any label; in-time labels still join."""
    rng = random.Random(77)
    sc = scenario(rng, 100)
    scored = [x for x in sc.inputs if isinstance(x, ScoredIn)]
    labels = [x for x in sc.inputs if isinstance(x, LabelIn)]
    event_time = {x.event.event_id: to_us(x.event.event_time) for x in scored}
    # Corrections are expected only for reversals and for labels past the horizon.
    may_correct = {
        x.fact.target_event_id
        for x in labels
        if "-rev" in x.fact.label.label_id
        or x.fact.label.time_us
        > event_time.get(x.fact.target_event_id or "", 0) + DEFAULT_SPEC.horizon_us
    }
    # Labels are read out of label-time order by up to 1.5 h (reversals read first).
    spec = JoinSpec(10 * HOUR_US, 2 * HOUR_US, 5 * HOUR_US, lateness_us=2 * HOUR_US)
    machine, store = JoinMachine(spec), DictStore()
    inputs = batches(rng, scored) + batches(rng, labels)
    held_back = run(machine, store, inputs, labels_caught_up=False)
    held_back += run(machine, store, [[]], labels_caught_up=True)  # then caught up
    corrected = {e.event_id for e in held_back if e.kind == "correction"}
    assert corrected <= may_correct
    assert Counter(e.kind for e in held_back)["positive"] > 0
    latest: dict[str, LabelRef] = {}
    for x in labels:
        t = x.fact.target_event_id or ""
        if t not in latest or x.fact.label.key > latest[t].key:
            latest[t] = x.fact.label

    def wrong(emitted: list[Emitted]) -> int:
        final = {e.event_id: e.value for e in emitted}
        return sum(final[e] != (latest[e].positive if e in latest else False) for e in final)

    assert wrong(held_back) == 0
    # Not held back, the log's clock (its final tick) matures and closes every event
    # before a label is read: the labels become orphans and the joins are lost.
    eager = run(JoinMachine(spec), DictStore(), inputs)
    assert wrong(eager) > 10


@pytest.mark.parametrize("seed", range(25))
def test_invariants_one_primary_consecutive_revisions_final_label(seed: int) -> None:
    rng = random.Random(1000 + seed)
    spec = DEFAULT_SPEC
    sc = scenario(rng, 150, horizon_h=10.0)
    store = DictStore()
    got = rows(run(JoinMachine(spec), store, batches(rng, sc.inputs)))
    latest: dict[str, LabelRef] = {}
    for x in sc.inputs:
        if isinstance(x, LabelIn) and x.fact.target_event_id is not None:
            t = x.fact.target_event_id
            if t not in latest or x.fact.label.key > latest[t].key:
                latest[t] = x.fact.label
    for eid in sc.events[:-1]:  # the final tick stays pending (nothing passes its horizon)
        examples = got[eid]  # every scored event ends as an example: nothing lost
        assert [r[2] for r in examples] == list(range(len(examples)))
        assert examples[0][1] in ("positive", "negative", "matured_negative")
        assert all(r[1] == "correction" for r in examples[1:])
        values = [r[3] for r in examples]
        assert all(a != b for a, b in itertools.pairwise(values))  # only changes
        # Every label here arrives within grace, so the final value is the latest label's.
        want = latest[eid].positive if eid in latest else False
        assert values[-1] == want, (eid, examples)
    assert not set(got) - set(sc.events)  # labels for unknown events emit nothing
    assert store.meta.pending == 1 and store.meta.orphans == 0  # the tick
    assert store.meta.held == len(store.records)


@pytest.mark.parametrize("seed", range(20))
def test_redeliveries_change_no_example(seed: int) -> None:
    rng = random.Random(2000 + seed)
    sc = scenario(rng, 80)
    noisy_inputs = with_redeliveries(rng, sc.inputs, share=0.3)
    # One input per batch: the same clock for both runs, so the examples are equal.
    plain = rows(run(JoinMachine(DEFAULT_SPEC), DictStore(), [[x] for x in sc.inputs]))
    noisy = rows(run(JoinMachine(DEFAULT_SPEC), DictStore(), [[x] for x in noisy_inputs]))
    assert noisy == plain
    # Any batching: a late label may now land before or after its event matured (a
    # primary positive, or a matured negative and a late correction), the final label
    # of every event is the same.
    anyhow = rows(run(JoinMachine(DEFAULT_SPEC), DictStore(), batches(rng, noisy_inputs)))
    assert {k: v[-1][3] for k, v in anyhow.items()} == {k: v[-1][3] for k, v in plain.items()}


@pytest.mark.parametrize("seed", range(15))
def test_a_batch_applied_twice_emits_nothing_the_second_time(seed: int) -> None:
    rng = random.Random(3000 + seed)
    sc = scenario(rng, 60)
    machine, store = JoinMachine(DEFAULT_SPEC), DictStore()
    targets: set[str | None] = set()
    for batch in batches(rng, sc.inputs):
        targets |= {x.fact.target_event_id for x in batch if isinstance(x, LabelIn)}
        run(machine, store, [batch])
        before = repr(dict(store.records))
        assert run(machine, store, [batch]) == []  # the crash replay of the same batch
        # Records are unchanged; a label of an event the batch itself closed may be
        # kept as an orphan by the replay (it emits nothing and expires, counted).
        assert repr(dict(store.records)) == before
        assert set(store.orphans) <= targets


def test_lifecycle_counters_and_closing() -> None:
    rng = random.Random(5)
    sc = scenario(rng, 200)
    store = DictStore()
    machine = JoinMachine(DEFAULT_SPEC)
    emitted = run(machine, store, batches(rng, sc.inputs))
    kinds = Counter(e.kind for e in emitted)
    assert kinds["matured_negative"] > 0 and kinds["positive"] > 0 and kinds["correction"] > 0
    # The final tick's watermark closed every earlier event: only the tick is held.
    assert set(store.records) == {"tick"}
    assert store.records["tick"].state not in (LABELLED, MATURED)
    assert store.meta.held == 1 and store.meta.pending == 1
