"""``streamscore simulate``: write a scenario's streams to Parquet files, one per topic.

Columns are the contract fields (typed from the msgspec Structs: timestamps as
``timestamp[us, UTC]``, optional fields nullable) followed by ``truth_*``
columns with the simulated ground truth, for evaluation only. A
``scenario.json`` next to them records the scenario, the seed and the drift
schedule. Writing streams in row groups keeps memory flat whatever the days.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import msgspec
import pyarrow as pa
import pyarrow.parquet as pq

from streamscore.libs.contracts.base import Event
from streamscore.libs.simulator.records import SimRecord
from streamscore.libs.simulator.scenario import Scenario

Progress = Callable[[str], None]
ROW_GROUP = 100_000


def arrow_type(t: msgspec.inspect.Type) -> pa.DataType:
    """The Arrow type of a contract field type."""
    if isinstance(t, msgspec.inspect.UnionType):
        (inner,) = [x for x in t.types if not isinstance(x, msgspec.inspect.NoneType)]
        return arrow_type(inner)
    if isinstance(t, msgspec.inspect.StrType | msgspec.inspect.LiteralType):
        return pa.string()
    if isinstance(t, msgspec.inspect.FloatType):
        return pa.float64()
    if isinstance(t, msgspec.inspect.IntType):
        return pa.int64()
    if isinstance(t, msgspec.inspect.BoolType):
        return pa.bool_()
    if isinstance(t, msgspec.inspect.DateTimeType):
        return pa.timestamp("us", tz="UTC")
    msg = f"no Arrow type for contract field type {t!r}"
    raise TypeError(msg)


def event_schema(event_type: type[Event]) -> pa.Schema:
    """The Arrow schema of one contract type (field order kept)."""
    info = msgspec.inspect.type_info(event_type)
    assert isinstance(info, msgspec.inspect.StructType)
    return pa.schema(
        [
            pa.field(
                f.name,
                arrow_type(f.type),
                nullable=isinstance(f.type, msgspec.inspect.UnionType),
            )
            for f in info.fields
        ]
    )


def _truth_type(values: list[object]) -> pa.DataType:
    sample = next((v for v in values if v is not None), None)
    if isinstance(sample, bool):
        return pa.bool_()
    if isinstance(sample, int):
        return pa.int64()
    if isinstance(sample, str):
        return pa.string()
    return pa.float64()


class _TopicWriter:
    """Buffers one topic's records and writes them in row groups."""

    def __init__(self, path: Path, event_type: type[Event]) -> None:
        self.path = path
        self.event_type = event_type
        self.rows: list[SimRecord] = []
        self.writer: pq.ParquetWriter | None = None
        self.event_fields = event_schema(event_type)
        self.schema = self.event_fields
        self.count = 0

    def add(self, record: SimRecord) -> None:
        self.rows.append(record)
        if len(self.rows) >= ROW_GROUP:
            self.flush()

    def flush(self) -> None:
        if not self.rows:
            return
        columns: dict[str, list[Any]] = {name: [] for name in self.event_fields.names}
        truth_names = sorted({k for r in self.rows for k in r.truth})
        truth: dict[str, list[Any]] = {k: [] for k in truth_names}
        for r in self.rows:
            for name in self.event_fields.names:
                columns[name].append(getattr(r.event, name))
            for k in truth_names:
                truth[k].append(r.truth.get(k))
        if self.writer is None:
            fields = list(self.schema) + [
                pa.field(f"truth_{k}", _truth_type(v)) for k, v in truth.items()
            ]
            self.schema = pa.schema(fields)
            self.writer = pq.ParquetWriter(self.path, self.schema, compression="zstd")
        arrays = [
            pa.array(columns[f.name], type=f.type)
            if not f.name.startswith("truth_")
            else pa.array(
                truth.get(f.name.removeprefix("truth_"), [None] * len(self.rows)), type=f.type
            )
            for f in self.schema
        ]
        self.writer.write_table(pa.Table.from_arrays(arrays, schema=self.schema))
        self.count += len(self.rows)
        self.rows = []

    def close(self) -> None:
        self.flush()
        if self.writer is not None:
            self.writer.close()


def write_records(
    records: Iterable[SimRecord], out: Path, *, progress: Progress = print
) -> dict[str, int]:
    """Write records to ``out/<topic>.parquet``; returns the row count per topic."""
    out.mkdir(parents=True, exist_ok=True)
    writers: dict[str, _TopicWriter] = {}
    started = last = time.monotonic()
    for n, record in enumerate(records, start=1):
        w = writers.get(record.topic)
        if w is None:
            w = writers[record.topic] = _TopicWriter(
                out / f"{record.topic}.parquet", type(record.event)
            )
        w.add(record)
        if n % 100_000 == 0 and time.monotonic() - last > 2:
            last = time.monotonic()
            progress(
                f"{n:,} records up to {record.time:%Y-%m-%d} "
                f"({n / (last - started):,.0f} records/s)"
            )
    for w in writers.values():
        w.close()
    return {topic: w.count for topic, w in sorted(writers.items())}


def simulate_to_files(
    scenario: Scenario, *, seed: int, out: Path, progress: Progress = print
) -> dict[str, int]:
    """Generate ``scenario`` with ``seed`` into ``out`` (Parquet per topic + scenario.json)."""
    started = time.monotonic()
    counts = write_records(scenario.records(seed), out, progress=progress)
    elapsed = time.monotonic() - started
    meta = {**scenario.describe(), "seed": seed, "counts": counts}
    (out / "scenario.json").write_text(json.dumps(meta, indent=2, sort_keys=True))
    total = sum(counts.values())
    progress(
        f"wrote {total:,} records in {elapsed:.1f} s ({total / elapsed:,.0f} records/s) to {out}"
    )
    return counts
