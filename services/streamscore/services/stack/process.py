"""Detached server processes: start them in their own session, stop them for sure.

Started processes keep running after the Python process that started them exits
(``streamscore up`` returns, the servers stay). When the stopping process is also
the starting one (tests, the demo), it reaps its children so no zombie is left.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from streamscore.services.stack.state import ProcessRecord, is_alive, proc_stat

#: Children started by this Python process, kept so they can be reaped (no zombies).
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def spawn(
    name: str,
    argv: Sequence[str],
    *,
    marker: str,
    cwd: Path,
    stdout: Path,
    stderr: Path,
    extra_logs: Sequence[Path] = (),
) -> ProcessRecord:
    """Start ``argv`` detached and return its record.

    1. ``start_new_session=True``: the server gets its own session and process group,
       so Ctrl-C in the terminal that ran ``up`` does not reach it, and it outlives us.
    2. stdin is ``/dev/null`` and stdout/stderr go to files in the logs folder: the
       server never blocks on, or dies with, our terminal.
    3. The kernel start time is recorded with the pid (see :mod:`.state`).
    """
    stdout.parent.mkdir(parents=True, exist_ok=True)
    with stdout.open("ab") as out, stderr.open("ab") as err:
        proc = subprocess.Popen(
            list(argv),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,
            close_fds=True,
        )
    _CHILDREN[proc.pid] = proc
    stat = proc_stat(proc.pid)
    return ProcessRecord(
        name=name,
        pid=proc.pid,
        marker=marker,
        start_ticks=None if stat is None else stat[1],
        started_at=datetime.now(UTC).isoformat(timespec="seconds"),
        logs=tuple(str(p) for p in (*extra_logs, stdout, stderr)),
    )


def _reap(pid: int) -> None:
    """Collect the exit status of ``pid`` if it is our child (else nothing to do)."""
    child = _CHILDREN.get(pid)
    if child is not None and child.poll() is not None:
        del _CHILDREN[pid]


def running(record: ProcessRecord) -> bool:
    """Whether the process of ``record`` is still ours and alive (reaping it if it exited).

    For a child of this process the exit status is the authority (no ``/proc`` race:
    Redis rewrites its command line while it starts); otherwise :func:`.state.is_alive`.
    """
    child = _CHILDREN.get(record.pid)
    if child is not None:
        if child.poll() is None:
            return True
        del _CHILDREN[record.pid]
        return False
    return is_alive(record)


def exited_child_status(pid: int) -> int | None:
    """Exit code of a child of ours that already exited, else ``None``."""
    child = _CHILDREN.get(pid)
    return None if child is None else child.poll()


def terminate(record: ProcessRecord) -> bool:
    """Send SIGTERM if the process is still ours; return whether it was running."""
    if not running(record):
        return False
    try:
        os.kill(record.pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    return True


def wait_stopped(record: ProcessRecord, deadline: float) -> bool:
    """Wait until the process is gone; SIGKILL it at ``deadline`` (monotonic).

    Returns ``True`` if it had to be killed.

    1. Poll until it exits on its own (SIGTERM was sent by :func:`terminate`): Kafka
       does a controlled shutdown and closes its logs cleanly, Redis flushes its AOF.
    2. Past the deadline it is stuck: SIGKILL (cannot be ignored), then wait again so
       the caller knows the pid is gone and the ports are released.
    """
    killed = False
    while running(record):
        if not killed and time.monotonic() >= deadline:
            try:
                os.kill(record.pid, signal.SIGKILL)
            except ProcessLookupError:
                break
            killed = True
            deadline = time.monotonic() + 10.0
        elif killed and time.monotonic() >= deadline:
            msg = f"{record.name} (pid {record.pid}) survived SIGKILL for 10 s"
            raise RuntimeError(msg)
        time.sleep(0.05)
    _reap(record.pid)
    return killed


def tail(paths: Sequence[Path | str], lines: int = 30) -> str:
    """The last ``lines`` lines of each existing, non-empty file, with headers."""
    parts: list[str] = []
    for p in paths:
        path = Path(p)
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        if text.strip():
            last = "\n".join(text.rstrip().splitlines()[-lines:])
            parts.append(f"--- {path} (last {lines} lines) ---\n{last}")
    return "\n".join(parts) if parts else "(no log output)"
