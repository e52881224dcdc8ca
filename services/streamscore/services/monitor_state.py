"""The drift monitor's state in Redis: a snapshot of its detectors, and the marks of its alerts.

Two keys per stream (and topic prefix):

* ``ss:monitor:{<prefix><stream>}:state`` — the pickled watch and alert desk
  (slot history, baselines, detectors, cooldowns) and the next offset of each
  partition of the scored log they have seen (the checkpoint: a restart reads
  again from there, so no record is lost to the detectors), tagged with the
  plan's fingerprint: a snapshot taken under another plan is ignored (the
  monitor warms up again). Loading goes through an allow-list unpickler: only
  streamscore's own library classes, a few numpy array constructors and
  ``collections.Counter`` can be named, so a tampered key cannot make the
  monitor call anything else.
* ``ss:monitor:{<prefix><stream>}:alerted`` — a hash ``segment|signal`` →
  confirmation time of the last alert, written after the alert is
  acknowledged by Kafka. After a restart from an older snapshot these marks
  keep the cooldowns, so the same cause is not alerted twice.
"""

from __future__ import annotations

import io
import pickle
from typing import Any

import redis

from streamscore.libs.monitoring.alerting import AlertDesk
from streamscore.libs.monitoring.plan import StreamPlan
from streamscore.libs.monitoring.watch import StreamWatch

_FORMAT = 2  # 1: without offsets (still read; the restart then resumes at the commits)
#: Array and scalar constructors numpy writes into pickles (numpy 1.x and 2.x paths).
_NUMPY = frozenset(
    {
        ("numpy", "dtype"),
        ("numpy", "ndarray"),
        ("numpy._core.numeric", "_frombuffer"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy.core.multiarray", "scalar"),
    }
)


class _AllowListUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _NUMPY or (module, name) == ("collections", "Counter"):
            return super().find_class(module, name)
        if module.startswith("streamscore.libs."):
            found = super().find_class(module, name)
            if isinstance(found, type):  # classes only, never a function to call
                return found
        raise pickle.UnpicklingError(f"refused to load {module}.{name} from a monitor snapshot")


def loads(data: bytes) -> Any:
    """Unpickle a snapshot, naming only allow-listed classes."""
    return _AllowListUnpickler(io.BytesIO(data)).load()


class MonitorStore:
    """Snapshot and alert marks of one stream's monitor (see the module docstring)."""

    def __init__(self, client: redis.Redis, stream: str, *, topic_prefix: str = "") -> None:
        self.client = client
        base = f"ss:monitor:{{{topic_prefix}{stream}}}"
        self.state_key = f"{base}:state"
        self.alerted_key = f"{base}:alerted"

    def load(self, plan: StreamPlan) -> tuple[StreamWatch, AlertDesk, dict[int, int]] | None:
        """The saved watch, desk and next offset per partition, if there is a snapshot under
        this plan (offsets empty: a format-1 snapshot, taken without them)."""
        data = self.client.get(self.state_key)
        if not isinstance(data, bytes):
            return None
        try:
            fmt, fingerprint, watch, desk, *rest = loads(data)
        except (pickle.UnpicklingError, ValueError, TypeError, EOFError, AttributeError):
            return None
        if fmt not in (1, _FORMAT) or fingerprint != plan.fingerprint():
            return None
        if not isinstance(watch, StreamWatch) or not isinstance(desk, AlertDesk):
            return None
        offsets = rest[0] if rest else {}
        if not isinstance(offsets, dict) or not all(
            type(k) is int and type(v) is int for k, v in offsets.items()
        ):
            return None
        return watch, desk, offsets

    def save(
        self, watch: StreamWatch, desk: AlertDesk, offsets: dict[int, int] | None = None
    ) -> int:
        """Replace the snapshot (with the next offset per partition it covers); its size."""
        data = pickle.dumps(
            (_FORMAT, watch.plan.fingerprint(), watch, desk, dict(offsets or {})), protocol=5
        )
        self.client.set(self.state_key, data)
        return len(data)

    def mark(self, marks: dict[str, float]) -> None:
        """Record alerted (segment|signal) → confirmation time."""
        if marks:
            self.client.hset(self.alerted_key, mapping={k: repr(v) for k, v in marks.items()})

    def marks(self) -> dict[str, float]:
        """Every recorded alert mark."""
        raw = self.client.hgetall(self.alerted_key)
        assert isinstance(raw, dict)
        return {k.decode(): float(v) for k, v in raw.items()}
