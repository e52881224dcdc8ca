"""The labelled-examples dataset on disk: the training layout, one folder per UTC event day.

``<root>/<stream>/date=YYYY-MM-DD/x<first>-<last>-<hash12>.parquet``

* Columns follow :mod:`streamscore.libs.training.examples` (what ``train``
  reads): ``event_id``, ``event_time``, the stream's entity keys, every model
  feature as ``float32`` (null when missing), ``label`` and ``label_time``
  (null for a matured negative, so any correction wins); then the joiner's
  own: ``kind``, ``revision``, ``label_id``, ``late``, ``matured_at``,
  ``model_version``, ``policy_version``, ``feature_names_hash``, ``score``,
  ``decision`` and ``values`` (the logged vector, exact doubles).
* Named feature columns are written only for vectors of the live feature
  declaration (``feature_names_hash`` equal to
  :func:`~streamscore.libs.features.definitions.feature_schema_hash`); the file's
  metadata carries ``features_schema_hash``. Rows of another declaration go to
  their own files (``<hash12>`` differs) with ``values`` only, which a
  training run refuses instead of misreading.
* ``<first>``, ``<last>``: the outbox seqs of the joiner's commit cycle that
  wrote the file (:mod:`.outbox`). A cycle is committed whole or not at all,
  so on restart every file from ``<first>`` = the oldest uncommitted seq on is
  removed and written again (:func:`uncommitted`).

>>> name = file_name(7, 12, "ab" * 32)
>>> name, parse_name(name)
('x000000000007-000000000012-abababababab.parquet', (7, 12))
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import date
from pathlib import Path

import numpy as np
import pyarrow as pa

from streamscore.libs.contracts.examples import LabelledExample
from streamscore.libs.features.definitions import feature_schema_hash, model_features
from streamscore.libs.features.training_rows import key_columns
from streamscore.libs.scored_log.layout import day_dirs

_TS = pa.timestamp("us", tz="UTC")
_NAME = re.compile(r"^x(?P<first>[0-9]{12})-(?P<last>[0-9]{12})-(?P<h>[0-9a-f]{12})\.parquet$")
SCHEMA_HASH_KEY = b"features_schema_hash"
#: Hidden temporary names (never matched by :func:`parse_name`).
TEMP_PREFIX = ".x-"

_TAIL = [
    pa.field("label", pa.bool_(), nullable=False),
    pa.field("label_time", _TS, nullable=True),
    pa.field("kind", pa.string(), nullable=False),
    pa.field("revision", pa.int32(), nullable=False),
    pa.field("label_id", pa.string(), nullable=True),
    pa.field("late", pa.bool_(), nullable=False),
    pa.field("matured_at", _TS, nullable=False),
    pa.field("model_version", pa.string(), nullable=False),
    pa.field("policy_version", pa.string(), nullable=False),
    pa.field("feature_names_hash", pa.string(), nullable=False),
    pa.field("score", pa.float64(), nullable=True),
    pa.field("decision", pa.string(), nullable=False),
    pa.field("values", pa.list_(pa.field("item", pa.float64())), nullable=False),
]


def file_name(first_seq: int, last_seq: int, names_hash: str) -> str:
    return f"x{first_seq:012d}-{last_seq:012d}-{names_hash[:12]}.parquet"


def parse_name(name: str) -> tuple[int, int] | None:
    """``(first, last)`` seqs of a dataset file name; ``None`` for any other name."""
    m = _NAME.match(name)
    return None if m is None else (int(m["first"]), int(m["last"]))


def schema(stream: str, *, named_features: bool) -> pa.Schema:
    """The Arrow schema of a file (with or without the named feature columns)."""
    fields = [
        pa.field("event_id", pa.string(), nullable=False),
        pa.field("event_time", _TS, nullable=False),
        *(pa.field(k, pa.string(), nullable=True) for k in key_columns(stream)),
    ]
    if named_features:
        fields += [pa.field(n, pa.float32(), nullable=True) for n in model_features(stream)]
    return pa.schema(fields + _TAIL)


def to_table(stream: str, rows: Sequence[LabelledExample]) -> pa.Table:
    """The rows (all of one ``feature_names_hash``) as a table of :func:`schema`."""
    hashes = {r.feature_names_hash for r in rows}
    if len(hashes) > 1:
        raise ValueError(f"one feature declaration per table, got {len(hashes)}")
    live = feature_schema_hash(stream)
    named = hashes == {live}
    sch = schema(stream, named_features=named)
    cols: dict[str, list[object]] = {f.name: [] for f in sch}
    names = model_features(stream)
    keys = key_columns(stream)
    for r in rows:
        cols["event_id"].append(r.event_id)
        cols["event_time"].append(r.event_time)
        for k in keys:
            cols[k].append(r.keys.get(k))
        if named:
            for n, v in zip(names, r.values, strict=True):
                cols[n].append(v)
        cols["label"].append(r.label)
        cols["label_time"].append(r.label_time)
        cols["kind"].append(r.kind)
        cols["revision"].append(r.revision)
        cols["label_id"].append(r.label_id)
        cols["late"].append(r.late)
        cols["matured_at"].append(r.matured_at)
        cols["model_version"].append(r.model_version)
        cols["policy_version"].append(r.policy_version)
        cols["feature_names_hash"].append(r.feature_names_hash)
        cols["score"].append(r.score)
        cols["decision"].append(r.decision)
        cols["values"].append(r.values)
    table = pa.Table.from_pydict(cols, schema=sch)
    meta_hash = next(iter(hashes)) if hashes else live
    return table.replace_schema_metadata({SCHEMA_HASH_KEY: meta_hash.encode()})


def files(
    root: Path, stream: str, start_day: date | None = None, end_day: date | None = None
) -> list[tuple[date, Path]]:
    """The finished dataset files of ``stream`` within the days, by day then name."""
    out = []
    for day, folder in day_dirs(root, stream, start_day, end_day):
        for p in sorted(folder.iterdir()):
            if parse_name(p.name) is not None:
                out.append((day, p))
    return out


def uncommitted(root: Path, stream: str, first_uncommitted_seq: int) -> list[Path]:
    """Files written by a cycle that never committed (their first seq is not committed)."""
    return [
        p
        for _day, p in files(root, stream)
        if (seqs := parse_name(p.name)) is not None and seqs[0] >= first_uncommitted_seq
    ]


def read_examples(
    root: Path,
    stream: str,
    start_day: date | None = None,
    end_day: date | None = None,
    *,
    columns: Iterable[str] | None = None,
) -> pa.Table:
    """Every example row of the days (all revisions), with the joiner's common columns.

    Named feature columns are left out (they differ between declarations);
    ``columns`` narrows further.
    """
    import pyarrow.parquet as pq  # noqa: PLC0415

    wanted = list(columns) if columns is not None else None
    base = schema(stream, named_features=False)
    parts = []
    for _day, path in files(root, stream, start_day, end_day):
        t = pq.read_table(path, columns=wanted or base.names)
        parts.append(t.replace_schema_metadata(None))
    if not parts:
        sch = base if wanted is None else pa.schema([base.field(c) for c in wanted])
        return sch.empty_table()
    return pa.concat_tables(parts)


def final_labels(table: pa.Table) -> pa.Table:
    """One row per ``event_id``: its highest revision (the label it ends with), in row order.

    >>> t = pa.table({"event_id": ["a", "b", "a"], "revision": [0, 0, 1], "label": [0, 1, 1]})
    >>> final_labels(t).to_pydict()
    {'event_id': ['b', 'a'], 'revision': [0, 1], 'label': [1, 1]}
    """
    n = table.num_rows
    if n == 0:
        return table
    ids = np.asarray(table.column("event_id").to_numpy(zero_copy_only=False), dtype=object)
    rev = np.asarray(table.column("revision").to_numpy(zero_copy_only=False), dtype=np.int64)
    order = np.lexsort((np.arange(n), rev, ids))  # by id, then revision, then row
    last = np.r_[ids[order][1:] != ids[order][:-1], True]
    return table.take(pa.array(np.sort(order[last])))
