"""The row layout of the scored-event log on disk: one flat, typed Arrow schema.

One row per :class:`~streamscore.libs.contracts.scored.ScoredEvent` record, the
contract's fields followed by where the record came from on Kafka:

* ``event_time`` and ``decided_at``: ``timestamp[us, UTC]`` (offsets other
  than UTC are converted, the instant is kept; the contract has microseconds).
* ``keys``: ``map<string, string>`` and ``feature_freshness``:
  ``map<string, double>`` with null values for unknown ages. Maps keep the
  record's entry order and stay typed and queryable (Spark, DuckDB, pandas read
  them as lists of pairs); a JSON string would need a second parse everywhere.
* ``values``: ``list<double>`` in the model manifest's feature order
  (``feature_names_hash`` names it), a missing value is a **null item**, never
  0 or NaN. Doubles hold the logged floats bit for bit.
* ``score``, ``degraded``: nullable, as in the contract.
* ``model_role`` (contract v2): nullable only because files written before
  it lack the column; readers with this schema see null there, meaning
  ``champion``.
* ``kafka_partition`` (int32), ``kafka_offset`` (int64): the record's origin on
  ``scored.<stream>``, used for file names, recovery and dedupe order.

>>> from datetime import datetime, timezone
>>> t = datetime(2026, 1, 1, 23, 30, tzinfo=timezone.utc)
>>> ev = ScoredEvent(event_id="e1", event_time=t, stream="transactions",
...     keys={"customer_id": "C1"}, feature_names_hash="0" * 64, values=[1.5, None],
...     model_version="m1", policy_version="p1", score=None, decision="approve",
...     policy_path="degraded:no_score", degraded="no_score", feature_freshness={"g": None},
...     decided_at=t)
>>> table = to_table([Logged(ev, partition=2, offset=41)])
>>> table.column("values").to_pylist(), table.column("score").to_pylist()
([[1.5, None]], [None])
>>> table.schema.equals(SCHEMA)
True
>>> to_rows(table) == [Logged(ev, partition=2, offset=41)]
True
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from itertools import accumulate, chain
from typing import Any, NamedTuple

import pyarrow as pa

from streamscore.libs.contracts.scored import ScoredEvent

_TS = pa.timestamp("us", tz="UTC")

#: The Arrow (and Parquet) schema of every scored-log file.
SCHEMA: pa.Schema = pa.schema(
    [
        pa.field("event_id", pa.string(), nullable=False),
        pa.field("event_time", _TS, nullable=False),
        pa.field("stream", pa.string(), nullable=False),
        pa.field("keys", pa.map_(pa.string(), pa.string()), nullable=False),
        pa.field("feature_names_hash", pa.string(), nullable=False),
        pa.field("values", pa.list_(pa.field("item", pa.float64())), nullable=False),
        pa.field("model_version", pa.string(), nullable=False),
        pa.field("policy_version", pa.string(), nullable=False),
        pa.field("score", pa.float64(), nullable=True),
        pa.field("decision", pa.string(), nullable=False),
        pa.field("policy_path", pa.string(), nullable=False),
        pa.field("degraded", pa.string(), nullable=True),
        pa.field("feature_freshness", pa.map_(pa.string(), pa.float64()), nullable=False),
        pa.field("decided_at", _TS, nullable=False),
        # Contract v2; null in files written before it (read back as "champion").
        pa.field("model_role", pa.string(), nullable=True),
        pa.field("kafka_partition", pa.int32(), nullable=False),
        pa.field("kafka_offset", pa.int64(), nullable=False),
    ]
)


class Logged(NamedTuple):
    """One decoded scored-event record and its position on the log topic."""

    event: ScoredEvent
    partition: int
    offset: int


def _offsets(lengths: Iterable[int]) -> pa.Array:
    """List offsets (``[0, n0, n0 + n1, ...]``) of consecutive lists of these lengths."""
    return pa.array([0, *accumulate(lengths)], type=pa.int32())


def _map(dicts: Sequence[Mapping[str, Any]], value_type: pa.DataType) -> pa.Array:
    return pa.MapArray.from_arrays(
        _offsets(map(len, dicts)),
        pa.array(list(chain.from_iterable(dicts)), type=pa.string()),
        pa.array(list(chain.from_iterable(d.values() for d in dicts)), type=value_type),
    )


def to_table(rows: Sequence[Logged]) -> pa.Table:
    """The Arrow table of ``rows``, in their order, with :data:`SCHEMA`.

    Maps and lists are built from flat arrays and offsets (about twice as fast
    as converting Python lists of pairs).
    """
    events = [r.event for r in rows]
    values = [e.values for e in events]

    def text(name: str) -> pa.Array:
        return pa.array([getattr(e, name) for e in events], type=pa.string())

    columns = [
        text("event_id"),
        pa.array([e.event_time for e in events], type=_TS),
        text("stream"),
        _map([e.keys for e in events], pa.string()),
        text("feature_names_hash"),
        pa.ListArray.from_arrays(
            _offsets(map(len, values)),
            pa.array(list(chain.from_iterable(values)), type=pa.float64()),
        ),
        text("model_version"),
        text("policy_version"),
        pa.array([e.score for e in events], type=pa.float64()),
        text("decision"),
        text("policy_path"),
        text("degraded"),
        _map([e.feature_freshness for e in events], pa.float64()),
        pa.array([e.decided_at for e in events], type=_TS),
        text("model_role"),
        pa.array([r.partition for r in rows], type=pa.int32()),
        pa.array([r.offset for r in rows], type=pa.int64()),
    ]
    return pa.Table.from_arrays(columns, schema=SCHEMA)


def to_rows(table: pa.Table) -> list[Logged]:
    """Read rows back as contract records (audits, tests); the inverse of :func:`to_table`."""
    out: list[Logged] = []
    for r in table.to_pylist():
        event = ScoredEvent(
            event_id=r["event_id"],
            event_time=r["event_time"],
            stream=r["stream"],
            keys=dict(r["keys"]),
            feature_names_hash=r["feature_names_hash"],
            values=r["values"],
            model_version=r["model_version"],
            policy_version=r["policy_version"],
            score=r["score"],
            decision=r["decision"],
            policy_path=r["policy_path"],
            degraded=r["degraded"],
            feature_freshness=dict(r["feature_freshness"]),
            decided_at=r["decided_at"],
            model_role=r.get("model_role") or "champion",
        )
        out.append(Logged(event, r["kafka_partition"], r["kafka_offset"]))
    return out
