"""Where scored-log files live and what their names mean.

``<root>/<stream>/date=YYYY-MM-DD/p<partition>-<first>-<last>.parquet``

* ``date=``: the UTC day of the rows' ``event_time`` (Hive-style, so Spark,
  DuckDB and ``pyarrow.dataset`` see a ``date`` partition column).
* ``<partition>``, ``<first>``, ``<last>``: the Kafka partition of
  ``scored.<stream>`` and the first and last offsets of the **segment** the
  file belongs to, i.e. every offset the sink consumed from that partition
  between two commits. A segment whose events fall on several days is written
  as one file per day, all with the same name; a file holds only its day's
  rows. Numbers are zero-padded so names sort by offset.

A name therefore says which offsets a file covers without opening it: the
sink's recovery re-cuts re-consumed records at the same offsets, so a file
written again has the same name and replaces the earlier one (see
:mod:`streamscore.services.scored_sink`). Files being written are hidden
(``.p<partition>-<nonce>.tmp``, :func:`temp_prefix`) and never match :func:`parse_name`.

>>> from datetime import date
>>> name = file_name(3, 120, 4_999)
>>> name
'p00003-00000000000000000120-00000000000000004999.parquet'
>>> parse_name(name)
SegmentName(partition=3, first_offset=120, last_offset=4999)
>>> parse_name(temp_prefix(3) + "4f2a.tmp") is None
True
>>> day_dir(Path("/data"), "logins", date(2026, 3, 1)).as_posix()
'/data/logins/date=2026-03-01'
>>> parse_day("date=2026-03-01"), parse_day("notes")
(datetime.date(2026, 3, 1), None)
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import NamedTuple

_NAME = re.compile(r"^p(?P<partition>[0-9]{5})-(?P<first>[0-9]{20})-(?P<last>[0-9]{20})\.parquet$")
_DAY = re.compile(r"^date=(?P<day>[0-9]{4}-[0-9]{2}-[0-9]{2})$")


class SegmentName(NamedTuple):
    """What a file name says: partition and the segment's offset range (inclusive)."""

    partition: int
    first_offset: int
    last_offset: int


def file_name(partition: int, first_offset: int, last_offset: int) -> str:
    """The name of a segment's file (the same in every day directory it touches)."""
    return f"p{partition:05d}-{first_offset:020d}-{last_offset:020d}.parquet"


def parse_name(name: str) -> SegmentName | None:
    """The segment a file name stands for, ``None`` for any other name (temp files...)."""
    m = _NAME.match(name)
    if m is None:
        return None
    return SegmentName(int(m["partition"]), int(m["first"]), int(m["last"]))


def temp_prefix(partition: int) -> str:
    """Names of a partition's temporary files start with this (they are hidden)."""
    return f".p{partition:05d}-"


def day_of(t: datetime) -> date:
    """The UTC day of an instant (the partition of a row).

    >>> from datetime import timedelta, timezone
    >>> day_of(datetime(2026, 1, 2, 0, 30, tzinfo=timezone(timedelta(hours=2))))
    datetime.date(2026, 1, 1)
    """
    return t.astimezone(UTC).date()


def stream_dir(root: Path, stream: str) -> Path:
    """The folder of one stream's log."""
    return root / stream


def day_dir(root: Path, stream: str, day: date) -> Path:
    """The folder of one stream's rows of one UTC day."""
    return stream_dir(root, stream) / f"date={day.isoformat()}"


def parse_day(dir_name: str) -> date | None:
    """The day of a ``date=YYYY-MM-DD`` folder name, ``None`` for any other name."""
    m = _DAY.match(dir_name)
    if m is None:
        return None
    try:
        return date.fromisoformat(m["day"])
    except ValueError:
        return None


def day_dirs(
    root: Path, stream: str, start_day: date | None = None, end_day: date | None = None
) -> Iterator[tuple[date, Path]]:
    """The stream's day folders within ``[start_day, end_day]`` (inclusive), by day."""
    base = stream_dir(root, stream)
    if not base.is_dir():
        return
    found = []
    for p in base.iterdir():
        day = parse_day(p.name)
        if day is None or not p.is_dir():
            continue
        if (start_day is None or day >= start_day) and (end_day is None or day <= end_day):
            found.append((day, p))
    yield from sorted(found)


def segment_files(day_folder: Path) -> Iterator[tuple[SegmentName, Path]]:
    """The finished files of one day folder (temporary files skipped), by name."""
    for p in sorted(day_folder.iterdir()):
        name = parse_name(p.name)
        if name is not None:
            yield name, p
