"""Packing of the joiner's records, label facts, durations, and the examples dataset layout."""

from __future__ import annotations

import random
import struct
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest

from streamscore.libs.contracts.codec import decode, encode
from streamscore.libs.contracts.examples import LabelledExample
from streamscore.libs.contracts.samples import sample_messages
from streamscore.libs.features.compute import label_positive
from streamscore.libs.features.definitions import feature_schema_hash, model_features
from streamscore.libs.labels.dataset import final_labels, parse_name, schema, to_table, uncommitted
from streamscore.libs.labels.facts import fact_of, positive_of
from streamscore.libs.labels.records import (
    Emitted,
    context_of,
    pack_record,
    pack_values,
    record_of,
    to_example,
    unpack_record,
    unpack_values,
)
from streamscore.libs.labels.spec import DAY_US, default_spec, from_us, parse_duration, to_us
from streamscore.libs.training.examples import LABEL, check_schema, from_table
from tests.label_join_cases import scored_event

ODD = [-0.0, 5e-324, 2.2250738585072014e-308, 1.7976931348623157e308, 0.1, 1 / 3, 1e39, None]


def bits(values: list[float | None]) -> list[bytes | None]:
    return [None if v is None else struct.pack("<d", v) for v in values]


@pytest.mark.parametrize("seed", range(20))
def test_values_round_trip_bit_for_bit(seed: int) -> None:
    rng = random.Random(seed)
    f32 = struct.unpack("f", struct.pack("f", rng.random()))[0]
    values = [rng.choice([*ODD, rng.gauss(0, 1e3), f32]) for _ in range(rng.randrange(30))]
    assert bits(unpack_values(pack_values(values))) == bits(values)


def test_float32_inputs_are_stored_in_four_bytes() -> None:
    f32 = [struct.unpack("f", struct.pack("f", x))[0] for x in (0.1, 2.5, 1e6)]
    assert len(pack_values(f32)) == 1 + 4 * 3
    assert len(pack_values([0.1])) == 1 + 8


def test_record_and_example_carry_the_scored_event_exactly() -> None:
    ev = scored_event("e1", 3.5)
    rec = record_of(ev, 0)
    assert unpack_record(pack_record(rec)) == rec
    ex = to_example(Emitted("e1", "matured_negative", 0, None, False, rec, rec.t_us + DAY_US),
                    context_of(ev), "transactions")  # fmt: skip
    assert (ex.event_time, ex.keys, ex.score, ex.decision) == (
        ev.event_time,
        ev.keys,
        ev.score,
        ev.decision,
    )
    assert bits(ex.values) == bits(ev.values)
    assert (ex.model_version, ex.feature_names_hash) == (ev.model_version, ev.feature_names_hash)
    assert decode(LabelledExample, encode(ex), max_bytes=1 << 20) == ex


def test_label_facts_agree_with_the_feature_layer() -> None:
    for topic in (
        "labels.chargebacks",
        "labels.account_takeovers",
        "labels.failures",
        "labels.conversions",
    ):
        for label in sample_messages(topic, 50, seed=3):
            assert positive_of(label) == label_positive(label)
            fact = fact_of(label)
            assert fact.label.time_us == to_us(label.event_time)  # type: ignore[attr-defined]
            assert fact.target_event_id == getattr(label, "target_event_id", None)


def test_durations_and_defaults() -> None:
    assert parse_duration("120d") == 120 * DAY_US and parse_duration("0s") == 0
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration("3 weeks")
    assert default_spec("transactions").horizon_us == 120 * DAY_US
    t = datetime(2026, 5, 1, 12, 30, 1, 7, tzinfo=UTC)
    assert from_us(to_us(t)) == t


def _example(
    eid: str, rev: int, kind: str, label: bool, *, names_hash: str, day: int = 0
) -> LabelledExample:
    t = datetime(2026, 3, 1, 23, tzinfo=UTC) + timedelta(days=day)
    n = len(model_features("transactions"))
    return LabelledExample(
        event_id=eid, stream="transactions", event_time=t, kind=kind, revision=rev,  # type: ignore[arg-type]
        label=label, label_time=None if kind == "matured_negative" else t + timedelta(days=rev + 1),
        label_id=None if kind == "matured_negative" else f"cb-{eid}-{rev}", late=False,
        matured_at=t + timedelta(days=120), keys={"customer_id": "C1", "terminal_id": "T1"},
        feature_names_hash=names_hash, values=[float(i) if i % 3 else None for i in range(n)],
        model_version="m-1", policy_version="p-1", score=0.25, decision="approve",
    )  # fmt: skip


def test_dataset_table_is_what_training_reads() -> None:
    live = feature_schema_hash("transactions")
    rows = [
        _example("a", 0, "matured_negative", False, names_hash=live),
        _example("a", 1, "correction", True, names_hash=live),
        _example("b", 0, "positive", True, names_hash=live),
        _example("b", 1, "correction", False, names_hash=live),
    ]
    table = to_table("transactions", rows)
    assert check_schema(table.schema, "transactions", LABEL) == []
    ex = from_table(table, "transactions", LABEL)
    # The trainer keeps the latest label_time per event: the corrections win.
    assert dict(zip(ex.event_id.tolist(), ex.y.tolist(), strict=True)) == {"a": True, "b": False}
    final = final_labels(table).to_pydict()
    assert dict(zip(final["event_id"], final["label"], strict=True)) == {"a": True, "b": False}


def test_vectors_of_another_declaration_are_refused_by_training() -> None:
    table = to_table("transactions", [_example("a", 0, "positive", True, names_hash="ab" * 32)])
    assert table.schema.equals(schema("transactions", named_features=False), check_metadata=False)
    assert check_schema(table.schema, "transactions", LABEL)  # missing columns, hash differs
    with pytest.raises(ValueError, match="one feature declaration"):
        mixed = [
            _example(e, 0, "positive", True, names_hash=h * 32)
            for e, h in (("a", "ab"), ("b", "cd"))
        ]
        to_table("transactions", mixed)


def test_names_and_uncommitted_files(tmp_path: pa.Table) -> None:
    from pathlib import Path

    root = Path(str(tmp_path))
    folder = root / "transactions" / "date=2026-03-01"
    folder.mkdir(parents=True)
    for first, last in ((1, 4), (5, 9), (10, 12)):
        (folder / f"x{first:012d}-{last:012d}-{'ab' * 6}.parquet").write_bytes(b"")
    (folder / ".x-tmp").write_bytes(b"")
    assert parse_name(".x-tmp") is None
    assert sorted(p.name[:13] for p in uncommitted(root, "transactions", 5)) == [
        "x000000000005", "x000000000010",
    ]  # fmt: skip
