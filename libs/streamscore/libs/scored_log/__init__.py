"""The scored-event log at rest: Parquet files per stream and UTC day, and their reader.

``streamscore scored-sink`` (:mod:`streamscore.services.scored_sink`) writes
``scored.<stream>`` to files; this package holds the parts that do not touch
Kafka: the row layout (:mod:`.table`), where files live and what their names
mean (:mod:`.layout`), when a file is closed (:mod:`.segments`) and the
deduplicating reader (:mod:`.read`).
"""

from __future__ import annotations

from streamscore.libs.scored_log.layout import day_dir, file_name, parse_name
from streamscore.libs.scored_log.read import read_scored
from streamscore.libs.scored_log.segments import PartitionSegments, RollPolicy, Segment
from streamscore.libs.scored_log.table import SCHEMA, Logged, to_rows, to_table

__all__ = [
    "SCHEMA",
    "Logged",
    "PartitionSegments",
    "RollPolicy",
    "Segment",
    "day_dir",
    "file_name",
    "parse_name",
    "read_scored",
    "to_rows",
    "to_table",
]
