"""A brute-force reference (keeps every event, recomputes each aggregate), as a fixture.

With ``--import-mode=importlib`` test modules cannot import siblings, so the
reference class is handed to tests by the ``reference`` fixture.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest

from streamscore.libs.windows import Window


@dataclass
class Reference:
    tile_us: int
    grace_us: int
    horizon_us: int
    times: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    keys: list[str | None] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)
    watermark: int | None = None
    late: int = 0

    def add(self, t: int, x: float, key: str | None, event_id: str | None) -> str:
        """The documented rule: a seen id whose tile is retained is a duplicate; late is
        ``t < watermark - grace``; tiles older than ``(watermark - horizon) // T`` are gone."""
        if event_id is not None and event_id in self.seen:
            assert self.watermark is not None
            if t // self.tile_us >= (self.watermark - self.horizon_us) // self.tile_us:
                return "duplicate"
        if self.watermark is not None and t < self.watermark - self.grace_us:
            self.late += 1
            return "late_dropped"
        if event_id is not None:
            self.seen.add(event_id)
        self.times.append(t)
        self.values.append(x)
        self.keys.append(key)
        self.watermark = t if self.watermark is None else max(self.watermark, t)
        return "accepted"

    def select(self, t: int, w: Window) -> np.ndarray:
        times = np.array(self.times, dtype=np.int64)
        lo, hi = t - w.delay_us - w.length_us, t - w.delay_us
        if w.mode == "exact":
            return (times > lo) & (times <= hi)
        tiles = times // self.tile_us
        if w.mode == "tumbling":  # the epoch-aligned bucket [jW, (j+1)W) holding hi, whole tiles
            start = (hi // w.length_us) * w.length_us
            return (times >= start) & (tiles <= hi // self.tile_us)
        return (tiles >= lo // self.tile_us + 1) & (tiles <= hi // self.tile_us)

    def stats(self, t: int, w: Window) -> dict[str, float | None]:
        sel = self.select(t, w)
        xs = np.array(self.values, dtype=np.float64)[sel]
        n = len(xs)
        return {
            "count": float(n) if n else None,
            "sum": float(xs.sum()) if n else None,
            "mean": float(xs.mean()) if n else None,
            "var": float(xs.var(ddof=1)) if n > 1 else None,
            "var_pop": float(xs.var()) if n else None,
            "min": float(xs.min()) if n else None,
            "max": float(xs.max()) if n else None,
        }

    def distinct(self, t: int, w: Window) -> int:
        sel = self.select(t, w)
        return len({k for k, s in zip(self.keys, sel, strict=True) if s and k is not None})

    def last_at(self, t: int) -> tuple[int, float] | None:
        best: tuple[int, float] | None = None
        for ti, xi in zip(self.times, self.values, strict=True):
            if ti <= t and (best is None or ti >= best[0]):
                best = (ti, xi)
        return best

    def n_after(self, t: int) -> int:
        return sum(1 for ti in self.times if ti > t)


@pytest.fixture
def reference() -> type[Reference]:
    return Reference
