"""``streamscore features offline``: a training set and Feast's offline files from recorded streams.

Input: a folder written by ``streamscore simulate`` (one Parquet file per
topic, named ``<topic>.parquet``). For one stream, its event file
(``events.<stream>.parquet``) and its label file (e.g.
``labels.chargebacks.parquet``; absent means no labels) are read row group by
row group, each row converted back to its contract struct (``truth_*``
columns set aside), and fed, in arrival order, through
:func:`~streamscore.libs.features.offline.compute`: the same computation the
stream processors run, so every value is point-in-time correct (no event or
label from after the event counts).

Output, in ``--out``:

- ``training/<stream>.parquet``: one row per distinct event (columns of
  :func:`~streamscore.libs.features.training_rows.training_columns`): every
  model feature as ``float32``, null when missing (never 0), a
  ``status_<group>`` column per group, then the ``truth_*`` columns of the
  event file as evaluation labels. The Parquet key-value metadata holds
  ``features_schema_hash`` (what a model manifest must match), ``stream``,
  ``model_features`` (JSON list) and ``scenario`` (the input's
  ``scenario.json``, if any).
- ``offline/<group>.parquet`` for each group of the stream: the join key,
  ``event_time`` and the group's features: the batch sources of the Feast
  feature views (:func:`~streamscore.libs.features.feast_repo.offline_path`),
  so ``FeatureStore.get_historical_features`` reads the same values.

What is not a usable event is counted, never silently dropped: a row that
breaks its contract or carries a non-finite number (what the processor sends
to the DLQ) is skipped and counted by reason; a repeated ``event_id`` yields
no second row (the processors re-emit the first vector) and is counted as a
duplicate. Input not in event-time order is refused (the merge by time would
silently reorder it). Files are written under a temporary name and renamed at
the end, so a failed run leaves no half file for Feast to read.

Progress (rows/s, the event time reached) goes to ``progress`` every few
seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import pyarrow as pa
import pyarrow.parquet as pq

from streamscore.libs.contracts.base import Event
from streamscore.libs.contracts.errors import SEMANTIC, classify
from streamscore.libs.contracts.registry import contract_for
from streamscore.libs.features.compute import FeatureInputError, check_finite
from streamscore.libs.features.definitions import feature_schema_hash, groups, model_features
from streamscore.libs.features.feast_repo import offline_path
from streamscore.libs.features.offline import compute
from streamscore.libs.features.training_rows import (
    EVENT_ID,
    EVENT_TIME,
    group_columns,
    group_row,
    key_columns,
    status_column,
    training_row,
)
from streamscore.libs.topics import STREAMS
from streamscore.libs.windows.timebase import to_us

Progress = Callable[[str], None]
#: Rows per written row group, and per read batch.
ROW_GROUP = 100_000
READ_BATCH = 50_000
TRUTH_PREFIX = "truth_"
TIMESTAMP = pa.timestamp("us", tz="UTC")
PROGRESS_EVERY_S = 3.0


@dataclass
class TrainingSetResult:
    """What one offline run read and wrote."""

    stream: str
    rows: int
    labels: int
    duplicates: int
    seconds: float
    training_set: Path
    offline_files: dict[str, Path]
    #: Skipped input rows by ``"<topic>: <reason>"`` (contract reasons, or ``semantic``).
    rejected: Counter[str] = field(default_factory=Counter)

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0


def topic_file(sim_dir: Path, topic: str) -> Path:
    """Where ``streamscore simulate`` writes a topic."""
    return sim_dir / f"{topic}.parquet"


def training_set_path(out: Path, stream: str) -> Path:
    """Where the training set of ``stream`` goes."""
    return out / "training" / f"{stream}.parquet"


def read_messages(
    path: Path, topic: str, rejected: Counter[str], *, batch_size: int = READ_BATCH
) -> Iterator[tuple[Event, dict[str, Any]]]:
    """The rows of one topic file as contract structs with their ``truth_*`` values, in order.

    Rows are read one batch at a time. A row that breaks its contract or holds a
    non-finite number is counted in ``rejected`` and skipped; rows out of
    event-time order raise ``ValueError``.
    """
    message_type = contract_for(topic).type
    pf = pq.ParquetFile(path)
    truth_names = [n for n in pf.schema_arrow.names if n.startswith(TRUTH_PREFIX)]
    last_us: int | None = None
    for batch in pf.iter_batches(batch_size=batch_size):
        for row in batch.to_pylist():
            truth = {name: row.pop(name) for name in truth_names}
            try:
                message = msgspec.convert(row, message_type)
                assert isinstance(message, Event)
                check_finite(message)
            except msgspec.ValidationError as exc:
                rejected[f"{topic}: {classify(str(exc))[0]}"] += 1
                continue
            except FeatureInputError:
                rejected[f"{topic}: {SEMANTIC}"] += 1
                continue
            t = to_us(message.event_time)
            if last_us is not None and t < last_us:
                msg = f"{path}: not in event-time order at {message.event_id}"
                raise ValueError(msg)
            last_us = t
            yield message, truth


class _ParquetSink:
    """Rows buffered by column and written in row groups to ``<path>.partial``, then renamed."""

    def __init__(self, path: Path, schema: pa.Schema) -> None:
        self.path = path
        self.partial = path.with_name(path.name + ".partial")
        self.schema = schema
        self.columns: dict[str, list[Any]] = {name: [] for name in schema.names}
        self.buffered = 0
        self.rows = 0
        path.parent.mkdir(parents=True, exist_ok=True)
        self.writer = pq.ParquetWriter(self.partial, schema, compression="zstd")

    def add(self, row: dict[str, Any]) -> None:
        for name, values in self.columns.items():
            values.append(row[name])
        self.buffered += 1
        if self.buffered >= ROW_GROUP:
            self.flush()

    def flush(self) -> None:
        if not self.buffered:
            return
        table = pa.Table.from_pydict(self.columns, schema=self.schema)
        self.writer.write_table(table)
        self.rows += self.buffered
        self.buffered = 0
        for values in self.columns.values():
            values.clear()

    def close(self) -> Path:
        self.flush()
        self.writer.close()
        os.replace(self.partial, self.path)
        return self.path

    def abort(self) -> None:
        self.writer.close()
        self.partial.unlink(missing_ok=True)


def training_schema(stream: str, truth: Sequence[pa.Field], metadata: dict[str, str]) -> pa.Schema:
    """The Arrow schema of a training set: ids, keys, float32 features, statuses, truth."""
    fields = [
        pa.field(EVENT_ID, pa.string(), nullable=False),
        pa.field(EVENT_TIME, TIMESTAMP, nullable=False),
        *(pa.field(k, pa.string()) for k in key_columns(stream)),
        *(pa.field(f, pa.float32()) for f in model_features(stream)),
        *(pa.field(status_column(g), pa.string()) for g in groups(stream)),
        *truth,
    ]
    return pa.schema(fields, metadata=metadata)


def group_schema(stream: str, group_name: str) -> pa.Schema:
    """The Arrow schema of one group's offline file (a Feast batch source)."""
    (g,) = [g for g in groups(stream) if g.name == group_name]
    key, ts, *features = group_columns(g)
    return pa.schema(
        [
            pa.field(key, pa.string()),
            pa.field(ts, TIMESTAMP, nullable=False),
            *(pa.field(f, pa.float32()) for f in features),
        ]
    )


def _metadata(sim_dir: Path, stream: str) -> dict[str, str]:
    scenario = sim_dir / "scenario.json"
    meta = {
        "features_schema_hash": feature_schema_hash(stream),
        "stream": stream,
        "model_features": json.dumps(model_features(stream)),
    }
    if scenario.exists():
        meta["scenario"] = json.dumps(json.loads(scenario.read_text()), sort_keys=True)
    return meta


def build_training_set(
    sim_dir: Path,
    out: Path,
    *,
    stream: str = "transactions",
    progress: Progress = print,
) -> TrainingSetResult:
    """Compute ``stream``'s features from ``sim_dir`` and write the training set and offline files.

    Steps:

    1. Open the event file (required) and the label file (optional) of the stream.
    2. Read both lazily; each event's truth values wait in a FIFO until
       :func:`compute` hands the event back (it yields events in input order).
    3. For each distinct event: a training row and one row per group's
       offline file; a repeated id is counted, not written twice.
    4. Rename the finished files into place (only after every row is written).
    """
    spec = STREAMS[stream]
    events_path = topic_file(sim_dir, spec.input_topic)
    labels_path = topic_file(sim_dir, spec.label_topic)
    if not events_path.exists():
        msg = f"no {spec.input_topic} events in {sim_dir} (expected {events_path.name})"
        raise FileNotFoundError(msg)
    truth_fields = [f for f in pq.read_schema(events_path) if f.name.startswith(TRUTH_PREFIX)]
    truth_names = [f.name for f in truth_fields]
    rejected: Counter[str] = Counter()
    pending: deque[tuple[str, dict[str, Any]]] = deque()
    label_count = 0

    def events() -> Iterator[Event]:
        for event, truth in read_messages(events_path, spec.input_topic, rejected):
            pending.append((event.event_id, truth))
            yield event

    def labels() -> Iterator[Event]:
        nonlocal label_count
        if not labels_path.exists():
            return
        for label, _truth in read_messages(labels_path, spec.label_topic, rejected):
            label_count += 1
            yield label

    training = _ParquetSink(
        training_set_path(out, stream),
        training_schema(stream, truth_fields, _metadata(sim_dir, stream)),
    )
    offline_dir = out / "offline"
    sinks = {
        g.name: (g, _ParquetSink(offline_path(offline_dir, g), group_schema(stream, g.name)))
        for g in groups(stream)
    }
    seen: set[str] = set()
    duplicates = 0
    started = last = time.monotonic()
    try:
        for n, (event, result) in enumerate(compute(stream, events(), labels()), start=1):
            event_id, truth = pending.popleft()
            assert event_id == event.event_id, (event_id, event.event_id)
            if event_id in seen:
                duplicates += 1
                continue
            seen.add(event_id)
            row = training_row(stream, event, result)
            for name in truth_names:
                row[name] = truth[name]
            training.add(row)
            for g, sink in sinks.values():
                sink.add(group_row(g, event, result))
            if n % 1_000 == 0 and time.monotonic() - last >= PROGRESS_EVERY_S:
                last = time.monotonic()
                progress(
                    f"{stream}: {n:,} events up to {event.event_time:%Y-%m-%d %H:%M} "
                    f"({n / (last - started):,.0f} rows/s)"
                )
    except BaseException:
        training.abort()
        for _, sink in sinks.values():
            sink.abort()
        raise
    result_path = training.close()
    files = {name: sink.close() for name, (_, sink) in sinks.items()}
    elapsed = time.monotonic() - started
    res = TrainingSetResult(
        stream=stream,
        rows=training.rows,
        labels=label_count,
        duplicates=duplicates,
        seconds=elapsed,
        training_set=result_path,
        offline_files=files,
        rejected=rejected,
    )
    progress(
        f"{stream}: wrote {res.rows:,} rows ({label_count:,} labels applied in arrival order, "
        f"{duplicates:,} duplicates, {sum(rejected.values()):,} rejected) in {elapsed:.1f} s "
        f"({res.rows_per_s:,.0f} rows/s) to {result_path} and {offline_dir}"
    )
    return res


def build_parser() -> argparse.ArgumentParser:
    """Arguments of ``streamscore features offline``."""
    parser = argparse.ArgumentParser(
        prog="streamscore features offline",
        description="Training set and Feast offline files from `streamscore simulate` output.",
    )
    parser.add_argument("--sim", required=True, help="folder written by `streamscore simulate`")
    parser.add_argument("--out", default=None, help="output folder (default: the --sim folder)")
    parser.add_argument("--stream", default="transactions", choices=sorted(STREAMS))
    return parser


def run_offline(sim: Path, out: Path | None = None, *, stream: str = "transactions") -> int:
    """Build and print where everything went; the exit code (1 when the input is unusable)."""
    try:
        res = build_training_set(sim, out or sim, stream=stream)
    except (FileNotFoundError, ValueError) as exc:
        print(f"features offline: {exc}", file=sys.stderr)
        return 1
    print(f"training set   {res.training_set}")
    for name, path in res.offline_files.items():
        print(f"offline {name:<14s} {path}")
    for reason, count in sorted(res.rejected.items()):
        print(f"rejected  {reason:40s} {count:10,d}")
    return 0


def main_features_offline(argv: Sequence[str] | None = None) -> int:
    """``streamscore features offline`` as a standalone entry point; the exit code."""
    args = build_parser().parse_args(argv)
    return run_offline(Path(args.sim), Path(args.out) if args.out else None, stream=args.stream)


if __name__ == "__main__":
    raise SystemExit(main_features_offline())
