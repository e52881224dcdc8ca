"""The label joiner's Parquet dataset: durable files per commit cycle, one writer per folder.

Layout and names: :mod:`streamscore.libs.labels.dataset`. How a cycle's
examples reach disk, before its Kafka transaction commits:

1. Group the rows by UTC event day and feature declaration; write each group
   through :func:`~streamscore.services.durable_files.publish` (temp file,
   fsync, atomic rename), named after the cycle's first and last outbox seq.
2. ``fsync`` every folder touched (new day folders are made durable too).
3. Only then may the caller commit the cycle's Kafka transaction.

A crash between 2 and 3 leaves files for seqs that are still in the outbox;
on start, :meth:`ExamplesDataset.recover` removes every file whose first seq is
not committed (and any temp file), and the next cycle writes those rows again.

One writer per folder: :meth:`ExamplesDataset.lock` takes an exclusive
``flock`` on ``<root>/<stream>/.lock`` (released by the kernel when the process
dies, even by SIGKILL). A second joiner on the same folder waits for it, so a
fenced joiner that is still writing can never leave a file behind the new
one's recovery.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import pyarrow.parquet as pq

from streamscore.libs.contracts.examples import LabelledExample
from streamscore.libs.labels.dataset import (
    TEMP_PREFIX,
    file_name,
    to_table,
    uncommitted,
)
from streamscore.libs.scored_log.layout import day_dir, day_of, stream_dir
from streamscore.services.durable_files import ensure_dir, publish, sync_dir

#: Parquet compression (small files, fast reads).
COMPRESSION = "zstd"


class FolderLockedError(RuntimeError):
    """Another joiner holds the dataset folder."""


class ExamplesDataset:
    """Writes one stream's examples under ``root`` (see the module doc)."""

    def __init__(self, root: Path, stream: str) -> None:
        self.root = root
        self.stream = stream
        self._lock_fd: int | None = None
        self.files_written = 0
        self.rows_written = 0

    def lock(self, timeout_s: float = 60.0) -> None:
        """Hold the folder exclusively (wait up to ``timeout_s`` for a previous holder)."""
        folder = ensure_dir(stream_dir(self.root, self.stream))
        fd = os.open(folder / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    os.close(fd)
                    msg = f"{folder} is held by another joiner"
                    raise FolderLockedError(msg) from None
                time.sleep(0.1)
        self._lock_fd = fd

    def unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing releases the flock
            self._lock_fd = None

    def recover(self, first_uncommitted_seq: int) -> int:
        """Remove files of cycles that never committed, and temp files; returns how many."""
        removed = 0
        touched: set[Path] = set()
        for path in uncommitted(self.root, self.stream, first_uncommitted_seq):
            path.unlink()
            touched.add(path.parent)
            removed += 1
        base = stream_dir(self.root, self.stream)
        if base.is_dir():
            for tmp in base.glob(f"date=*/{TEMP_PREFIX}*"):
                tmp.unlink(missing_ok=True)
        for folder in touched:
            sync_dir(folder)
        return removed

    def write(self, first_seq: int, last_seq: int, rows: Sequence[LabelledExample]) -> int:
        """Steps 1-2 of the module doc for one cycle's rows; returns files written."""
        groups: dict[tuple[object, str], list[LabelledExample]] = defaultdict(list)
        for r in rows:
            groups[(day_of(r.event_time), r.feature_names_hash)].append(r)
        folders: set[Path] = set()
        for (day, names_hash), group in sorted(groups.items(), key=lambda kv: str(kv[0])):
            folder = ensure_dir(day_dir(self.root, self.stream, day))  # type: ignore[arg-type]
            table = to_table(self.stream, group)

            def write(tmp: Path, table: object = table) -> None:
                pq.write_table(table, tmp, compression=COMPRESSION)

            publish(
                folder, file_name(first_seq, last_seq, names_hash), write, temp_prefix=TEMP_PREFIX
            )
            folders.add(folder)
        for folder in folders:
            sync_dir(folder)
        self.files_written += len(groups)
        self.rows_written += len(rows)
        return len(groups)
