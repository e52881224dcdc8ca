"""``streamscore bench windows``: a busy entity's per-event cost as its hour tile fills.

One entity's window state (hour tiles; exact 1 h and 1 d windows; raw events,
distinct keys and event ids kept, as a sensor's or a terminal's are) is given
``n`` events within one hour, then timed over ``--events`` more: per event,
the add, a 1 h and a 1 d read, a distinct read and the incremental encoding of
what changed (:func:`~streamscore.libs.windows.codec.changes`, what a feature
processor writes to Redis after each batch). A sensor read every 1.2 s puts
3,000 events in an hour tile.

Rows, for each ``n``: the cost per event, with the cost at ``n = 1`` of the
same run as the baseline (ratio near 1: the cost does not grow with the tile).
And the edge read itself: the Numba pass over a 3,000-event tile's columns
against the Python definition on the same events (a filtered list folded into
:class:`~streamscore.libs.windows.moments.Moments`), whose results must agree
bit for bit.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import sys
import time
from importlib.metadata import version
from typing import Any

from streamscore.libs.windows import DAY, HOUR, EntityWindows, Moments, Window, WindowConfig, warmup
from streamscore.libs.windows.codec import changes

FILLS = (1, 100, 1000, 3000)
W_HOUR, W_DAY = Window(HOUR), Window(DAY)


def parse_args(argv: list[str]) -> dict[str, Any]:
    p = argparse.ArgumentParser(prog="streamscore bench windows")
    p.add_argument("--events", type=int, default=300, help="events timed per fill level")
    return vars(p.parse_args(argv))


def _config() -> WindowConfig:
    return WindowConfig(
        tile_us=HOUR, windows=(W_HOUR, W_DAY), keep_events=True, dedupe=True, distinct=True
    )


def _per_event_us(fill: int, n: int) -> float:
    """Microseconds per add + three reads + encode, with ``fill`` events already in the tile."""
    e = EntityWindows(_config())
    t0 = 10 * DAY
    for i in range(fill):
        e.add(t0 + i * 1000, float(i % 97), key=f"k{i % 50}", event_id=f"old-{i}")
    changes(e)
    start = time.perf_counter()
    for j in range(n):
        t = t0 + (fill + j) * 1000
        e.add(t, 1.0, key=f"k{j % 50}", event_id=f"new-{j}")
        e.read(t, W_HOUR)
        e.read(t, W_DAY)
        e.read_distinct(t, W_HOUR)
        changes(e)
    return (time.perf_counter() - start) / n * 1e6


def _edge_read(reps: int) -> tuple[float, float, bool]:
    """(µs Numba columns, µs Python definition, bit-identical) for a 3,000-event tile."""
    e = EntityWindows(_config())
    rng = random.Random(7)
    t0 = 10 * DAY
    for i in range(3000):
        e.add(t0 + i * 1000, rng.uniform(0, 1e4), event_id=f"e{i}")
    evs = e.events[t0 // HOUR]
    rows = list(evs)
    lo, hi = t0 + 700_000, t0 + 2_400_000
    start = time.perf_counter()
    for _ in range(reps):
        ours = evs.moments_between(lo, hi)
    ours_us = (time.perf_counter() - start) / reps * 1e6
    start = time.perf_counter()
    for _ in range(reps):
        theirs = Moments.of(x for t, x, _ in rows if lo < t <= hi)
    theirs_us = (time.perf_counter() - start) / reps * 1e6
    same = (ours.count, ours.sum, ours.mean_, ours.m2, ours.min_, ours.max_) == (
        theirs.count,
        theirs.sum,
        theirs.mean_,
        theirs.m2,
        theirs.min_,
        theirs.max_,
    )
    return ours_us, theirs_us, same


def run(events: int = 300) -> dict[str, Any]:
    warmup()
    _per_event_us(10, 20)  # first calls (allocations, caches) out of the timings
    figures = {fill: _per_event_us(fill, events) for fill in FILLS}
    base = figures[FILLS[0]]
    rows: list[dict[str, Any]] = [
        {
            "metric": f"busy entity, {fill:,} in the tile: µs per event",
            "value": us,
            "unit": "µs",
            "baseline_name": f"same, {FILLS[0]} in the tile",
            "baseline": base,
            "ratio": base / us,
            "better": "lower",
        }
        for fill, us in figures.items()
    ]
    ours, theirs, same = _edge_read(reps=200)
    rows.append(
        {
            "metric": "edge read of a 3,000-event tile (Numba over columns)",
            "value": ours,
            "unit": "µs",
            "baseline_name": "Python: filtered list into Moments",
            "baseline": theirs,
            "ratio": theirs / ours,
            "better": "lower",
            "agrees": same,
        }
    )
    return {
        "bench": "windows",
        "conditions": {
            "per_event": "add, exact 1 h and 1 d reads, distinct 1 h read, encode changes",
            "tile": "1 h; raw events, distinct keys (50) and event ids kept",
            "events_timed_per_fill": events,
            "python": platform.python_version(),
            "numba": version("numba"),
            "cpu_count": os.cpu_count(),
        },
        "rows": rows,
    }


if __name__ == "__main__":
    print(run(**parse_args(sys.argv[1:])))
