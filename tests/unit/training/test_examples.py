"""The labelled-examples layout: what is checked, and the arrays a run trains on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from streamscore.libs.features.definitions import feature_schema_hash, model_features
from streamscore.libs.training.examples import (
    LABEL,
    LABEL_TIME,
    REVISION,
    check_schema,
    from_table,
    required_columns,
)

NAMES = model_features("transactions")
T0 = datetime(2026, 1, 5, tzinfo=UTC)


def _table(ids: list[str], labels: list[Any], **extra: Any) -> pa.Table:
    n = len(ids)
    cols: dict[str, Any] = {
        "event_id": ids,
        "event_time": pa.array(
            [T0 + timedelta(minutes=n - i) for i in range(n)], pa.timestamp("us", tz="UTC")
        ),
        "customer_id": [f"C{i}" for i in range(n)],
        "terminal_id": ["T"] * n,
        **{
            f: pa.array([float(i) if i % 3 else None for i in range(n)], pa.float32())
            for f in NAMES
        },
        LABEL: labels,
        **extra,
    }
    return pa.table(cols)


def test_layout_is_the_training_set_plus_a_label() -> None:
    cols = required_columns("transactions", LABEL)
    assert cols == ["event_id", "event_time", "customer_id", "terminal_id", *NAMES, LABEL]
    assert check_schema(_table(["a"], [1]).schema, "transactions", LABEL) == []


def test_schema_problems_are_named() -> None:
    bad = _table(["a"], ["yes"]).drop_columns(["tx_amount"])
    bad = bad.set_column(
        bad.schema.get_field_index("customer_nb_tx_1d"), "customer_nb_tx_1d", pa.array(["x"])
    )
    bad = bad.replace_schema_metadata({"features_schema_hash": "0" * 64})
    problems = check_schema(bad.schema, "transactions", LABEL)
    assert problems[0] == "missing columns: tx_amount"
    assert "feature customer_nb_tx_1d is string, not a float" in problems
    assert "label label is string, not bool or integer" in problems
    assert any(p.startswith("features_schema_hash differs") for p in problems)
    good = _table(["a"], [1]).replace_schema_metadata(
        {"features_schema_hash": feature_schema_hash("transactions")}
    )
    assert check_schema(good.schema, "transactions", LABEL) == []
    with pytest.raises(ValueError, match="missing columns"):
        from_table(bad, "transactions", LABEL)


def test_arrays_in_event_time_order_with_nan_for_missing() -> None:
    ex = from_table(_table(["a", "b", "c"], [True, False, True]), "transactions", LABEL)
    # Rows were written newest first: event-time order reverses them.
    assert ex.event_id.tolist() == ["c", "b", "a"]
    assert ex.y.tolist() == [True, False, True]
    assert ex.card.tolist() == ["C2", "C1", "C0"]
    assert ex.X.dtype == np.float32 and ex.X.shape == (3, len(NAMES))
    assert np.isnan(ex.X[2]).all() and (ex.X[0] == 2.0).all()
    assert np.diff(ex.event_time_us).min() > 0
    assert len(ex.take(ex.y)) == 2


def test_a_corrected_label_wins_by_label_time() -> None:
    lt = pa.array([T0 + timedelta(days=d) for d in (30, 40, 35)], pa.timestamp("us", tz="UTC"))
    ex = from_table(_table(["a", "a", "a"], [1, 0, 1], **{LABEL_TIME: lt}), "transactions", LABEL)
    assert (ex.event_id.tolist(), ex.y.tolist(), ex.replaced) == (["a"], [False], 2)
    # The joiner's revision decides first; a null label_time (matured negative) is earliest.
    lt = pa.array([T0, None, T0], pa.timestamp("us", tz="UTC"))
    rev = pa.array([0, 2, 1], pa.int32())
    ex = from_table(
        _table(["a", "a", "a"], [1, 0, 1], **{LABEL_TIME: lt, REVISION: rev}), "transactions", LABEL
    )
    assert ex.y.tolist() == [False]
    lt = pa.array([T0, None], pa.timestamp("us", tz="UTC"))
    ex = from_table(_table(["a", "a"], [1, 0], **{LABEL_TIME: lt}), "transactions", LABEL)
    assert ex.y.tolist() == [True]
    # Without label_time the last row read wins.
    ex = from_table(_table(["a", "a"], [0, 1]), "transactions", LABEL)
    assert (ex.y.tolist(), ex.replaced) == ([True], 1)


def test_a_null_label_or_card_is_refused() -> None:
    with pytest.raises(ValueError, match="1 rows have no label"):
        from_table(_table(["a", "b"], [1, None]), "transactions", LABEL)
    t = _table(["a", "b"], [1, 0])
    t = t.set_column(2, "customer_id", pa.array(["C1", None]))
    with pytest.raises(ValueError, match="1 rows have no customer_id"):
        from_table(t, "transactions", LABEL)
