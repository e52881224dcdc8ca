"""Segment ids of scored events, bounded by the plan's rules.

Segment ``0`` is ``all``. Each rule of the plan maps an entity key's value to
one segment: a value of its closed set, or (rules without one) one of the
first ``max_values`` values met; anything else goes to the rule's ``other``
segment. Ids are assigned as segments are first met and never change.

>>> from streamscore.libs.monitoring.plan import PLANS
>>> seg = Segments(PLANS["sensor_readings"])
>>> rule = seg.plan.segments[0]
>>> seg.ids(rule, ["M1-temperature", "M2-vibration", "M3-humidity", None]).tolist()
[1, 2, 3, -1]
>>> [seg.names[i] for i in (1, 2, 3)]
['sensor_type=temperature', 'sensor_type=vibration', 'sensor_type=other']
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from streamscore.libs.monitoring.plan import ALL, OTHER, SegmentRule, StreamPlan
from streamscore.libs.monitoring.slots import IntArray


class Segments:
    """Names and ids of the segments met so far (``0`` is ``all``)."""

    def __init__(self, plan: StreamPlan) -> None:
        self.plan = plan
        self.names: list[str] = [ALL]
        self._ids: dict[str, int] = {ALL: 0}
        self._open_values: dict[str, set[str]] = {r.name: set() for r in plan.segments}

    def _id(self, name: str) -> int:
        sid = self._ids.get(name)
        if sid is None:
            sid = self._ids[name] = len(self.names)
            self.names.append(name)
        return sid

    def segment_of(self, rule: SegmentRule, key_value: str | None) -> str | None:
        """The segment name of one key value under ``rule`` (``None``: the key is absent)."""
        value = rule.value_of(key_value)
        if value is None:
            return None
        if rule.values:
            return rule.segment(value if value in rule.values else OTHER)
        seen = self._open_values[rule.name]
        if value not in seen and len(seen) < rule.max_values:
            seen.add(value)
        return rule.segment(value if value in seen else OTHER)

    def ids(self, rule: SegmentRule, key_values: Sequence[str | None]) -> IntArray:
        """Segment ids of a batch under ``rule`` (``-1`` where the key is absent)."""
        cache: dict[str | None, int] = {}
        out = np.empty(len(key_values), dtype=np.int64)
        for i, kv in enumerate(key_values):
            sid = cache.get(kv)
            if sid is None:
                name = self.segment_of(rule, kv)
                sid = cache[kv] = -1 if name is None else self._id(name)
            out[i] = sid
        return out
