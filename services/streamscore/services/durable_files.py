"""Publish files so that a crash leaves either the whole file or nothing, and a rename survives.

POSIX gives atomic ``rename`` within a file system but not durability: until
the data and the directory entry are flushed, a power cut can leave an empty
or missing file even though ``rename`` returned. The order used here:

1. Write the bytes to a hidden temporary file in the **same** folder (a rename
   across file systems would not be atomic).
2. ``fsync`` the temporary file: its data is on disk before its name is.
3. ``os.replace`` it onto the final name: readers see the old file or the new
   one, never a partial one; an existing file with that name is replaced.
4. ``fsync`` the folder (:func:`sync_dir`), once for every rename made in it,
   before telling anyone the file exists (for the scored sink: before
   committing offsets). A new folder is made durable the same way, by
   syncing its parent.

>>> import tempfile
>>> with tempfile.TemporaryDirectory() as d:
...     folder = ensure_dir(Path(d) / "a" / "b")
...     final = publish(folder, "x.txt", lambda tmp: tmp.write_bytes(b"hi"), temp_prefix=".x-")
...     sync_dir(folder)
...     (final.read_bytes(), sorted(p.name for p in folder.iterdir()))
(b'hi', ['x.txt'])
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path


def sync_dir(folder: Path) -> None:
    """``fsync`` a folder, so the names created, renamed or removed in it are durable."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sync_file(path: Path) -> None:
    """``fsync`` a file's data and metadata (Linux syncs the inode, whatever the open mode)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def ensure_dir(folder: Path) -> Path:
    """Create ``folder`` (and parents) if needed; every new entry is made durable."""
    missing: list[Path] = []
    p = folder
    while not p.exists():
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        d.mkdir(exist_ok=True)
        sync_dir(d.parent)
    return folder


def publish(folder: Path, name: str, write: Callable[[Path], object], *, temp_prefix: str) -> Path:
    """Steps 1-3 of the module doc: ``write(tmp)``, fsync, rename to ``folder/name``.

    The caller syncs ``folder`` (step 4) once after its renames. On failure the
    temporary file is removed and the exception propagates; the final name is
    untouched.
    """
    tmp = folder / f"{temp_prefix}{uuid.uuid4().hex}.tmp"
    try:
        write(tmp)
        sync_file(tmp)
        final = folder / name
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return final
