"""The state file of a running local stack, and liveness checks that survive pid reuse.

``<home>/stack/stack.json`` records what ``up`` started: pids, ports, endpoints,
start times, the Kafka version and the log files. ``status`` and ``down`` (possibly
in another process, long after ``up``) read it back.

A pid alone is not an identity: after a reboot or a long time the kernel may give
the same pid to an unrelated program. A process counts as ours only while
``/proc/<pid>/cmdline`` still contains the expected program (``kafka.Kafka`` or
``redis-server``) and its kernel start time equals the one recorded.

>>> rec = ProcessRecord(name="redis", pid=2**22 + 1, marker="redis-server",
...                     start_ticks=None, started_at="2026-01-01T00:00:00+00:00", logs=())
>>> is_alive(rec)
False
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

#: Bumped when the file format changes; an unknown version is treated as stale.
STATE_VERSION = 1


@dataclass(frozen=True)
class ProcessRecord:
    """One process started by the stack manager."""

    name: str
    pid: int
    #: Text that ``/proc/<pid>/cmdline`` must contain for the pid to still be ours.
    marker: str
    #: Start time of the process in clock ticks since boot (``/proc/<pid>/stat`` field 22).
    start_ticks: int | None
    #: Wall-clock start, ISO 8601 UTC, for people reading the file.
    started_at: str
    logs: tuple[str, ...] = ()


@dataclass(frozen=True)
class StackState:
    """What ``up`` started. ``kafka``/``redis`` are ``None`` when that side is external."""

    home: str
    kafka_bootstrap: str | None
    redis_url: str | None
    logs_dir: str
    kafka_version: str
    kafka: ProcessRecord | None = None
    redis: ProcessRecord | None = None
    ports: dict[str, int] = field(default_factory=dict)
    version: int = STATE_VERSION

    def processes(self) -> list[ProcessRecord]:
        """The managed processes, Kafka first."""
        return [p for p in (self.kafka, self.redis) if p is not None]


def _record(raw: Any) -> ProcessRecord | None:
    if raw is None:
        return None
    return ProcessRecord(
        name=str(raw["name"]),
        pid=int(raw["pid"]),
        marker=str(raw["marker"]),
        start_ticks=None if raw.get("start_ticks") is None else int(raw["start_ticks"]),
        started_at=str(raw["started_at"]),
        logs=tuple(str(p) for p in raw.get("logs", ())),
    )


def load(path: Path) -> StackState | None:
    """The state in ``path``; ``None`` if missing, unreadable or of another version."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        if raw.get("version") != STATE_VERSION:
            return None
        return StackState(
            home=str(raw["home"]),
            kafka_bootstrap=raw.get("kafka_bootstrap"),
            redis_url=raw.get("redis_url"),
            logs_dir=str(raw["logs_dir"]),
            kafka_version=str(raw["kafka_version"]),
            kafka=_record(raw.get("kafka")),
            redis=_record(raw.get("redis")),
            ports={str(k): int(v) for k, v in raw.get("ports", {}).items()},
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def save(path: Path, state: StackState) -> None:
    """Write ``state`` atomically (temporary file, then rename), readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(asdict(state), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tmp.chmod(0o600)
    tmp.replace(path)


def remove(path: Path) -> None:
    """Delete the state file if present."""
    path.unlink(missing_ok=True)


def proc_stat(pid: int) -> tuple[str, int] | None:
    """``(state letter, start ticks)`` of ``pid`` from ``/proc``, or ``None`` if it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ")".
    fields = raw[raw.rfind(")") + 2 :].split()
    return fields[0], int(fields[19])


def cmdline(pid: int) -> str:
    """The command line of ``pid`` with arguments joined by spaces ("" if gone)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode("utf-8", errors="replace").strip()


def is_alive(record: ProcessRecord) -> bool:
    """Whether the recorded process still runs (not a zombie, not a reused pid)."""
    stat = proc_stat(record.pid)
    if stat is None or stat[0] in ("Z", "X"):
        return False
    if record.start_ticks is not None and stat[1] != record.start_ticks:
        return False
    # Redis rewrites its command line (process title) while starting: a read can fall
    # in between. Re-read briefly before concluding the pid belongs to something else.
    for _ in range(5):
        if record.marker in cmdline(record.pid):
            return True
        time.sleep(0.02)
    return False
