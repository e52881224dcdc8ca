"""Build the model input matrix from feature-enriched events, missing values as NaN.

A feature absent from an event's ``values`` or ``None`` there is NaN in the
matrix (XGBoost's and the ONNX tree ensemble's missing value), never 0; the
count of missing cells is returned so it can be exported as a metric.

>>> from datetime import datetime, timezone
>>> from streamscore.libs.contracts.events import Transaction
>>> from streamscore.libs.contracts.features import TransactionFeatures
>>> t = datetime(2026, 1, 1, tzinfo=timezone.utc)
>>> ev = Transaction(event_id="e", event_time=t, customer_id="c", terminal_id="x", amount=2.0)
>>> fv = TransactionFeatures(event=ev, values={"a": 1.0, "b": None}, feature_statuses={},
...     feature_freshness={}, computed_at=t, schema_hash="0" * 64)
>>> X, missing = model_matrix([fv], ["a", "b", "c"])
>>> X.tolist(), missing
([[1.0, nan, nan]], 2)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from streamscore.libs.contracts.features import FeatureVector

NAN = float("nan")


def model_matrix(
    vectors: Sequence[FeatureVector], feature_names: Sequence[str]
) -> tuple[npt.NDArray[np.float32], int]:
    """``(n, len(feature_names))`` float32 matrix in the model's order, and missing cells."""
    rows = []
    for fv in vectors:
        values = fv.values
        row = [values.get(name) for name in feature_names]
        rows.append([NAN if v is None else v for v in row])
    X = np.asarray(rows, dtype=np.float32).reshape(len(vectors), len(feature_names))
    return X, int(np.isnan(X).sum())


def degraded_reason(statuses: dict[str, str], required_groups: Sequence[str]) -> str | None:
    """Why a vector's features make its decision degraded, or ``None``.

    A required group that is ``OUTSIDE_MAX_AGE`` (stale) or ``ERROR`` (store
    unavailable) degrades the decision. ``NOT_FOUND`` does not: it is a new
    entity with no history yet, a normal case the model knows (missing values).
    A required group absent from the statuses is ``ERROR`` (the processor did
    not say, so we cannot trust it).

    >>> degraded_reason({"customer": "PRESENT", "terminal": "NOT_FOUND"}, ["customer", "terminal"])
    >>> degraded_reason({"customer": "OUTSIDE_MAX_AGE"}, ["customer", "terminal"])
    'features:OUTSIDE_MAX_AGE:customer,ERROR:terminal'
    """
    bad = []
    for group in required_groups:
        status = statuses.get(group, "ERROR")
        if status in ("OUTSIDE_MAX_AGE", "ERROR"):
            bad.append(f"{status}:{group}")
    return "features:" + ",".join(bad) if bad else None
