"""Online/offline agreement: how often a served feature differs from its offline recomputation.

An online value and an offline value agree when both are missing, or both
are present and equal up to float32 rounding (the feature record carries
float64 JSON numbers; the model reads float32). The per-feature mismatch
ratio is exported as ``streamscore_feature_mismatch_ratio``.

>>> a = Agreement(["x", "y"])
>>> a.add({"x": 1.0, "y": None}, {"x": 1.0000001, "y": None}, same_statuses=True)
[]
>>> a.add({"x": 1.0, "y": 0.0}, {"x": 2.0, "y": None}, same_statuses=False)
['x', 'y']
>>> a.ratio("x"), a.compared, a.status_mismatches
(0.5, 2, 1)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

#: Relative tolerance: float32 has 24 bits of mantissa (~6e-8); JSON round trips are exact.
RTOL = 1e-6
ATOL = 1e-9


def agrees(a: float | None, b: float | None) -> bool:
    """Both missing, or both present and equal within float32 rounding."""
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(a, b, rel_tol=RTOL, abs_tol=ATOL)


class Agreement:
    """Mismatch counts per feature over the events compared so far."""

    def __init__(self, features: Sequence[str]) -> None:
        self.features = list(features)
        self.mismatches = dict.fromkeys(self.features, 0)
        self.compared = 0
        self.status_mismatches = 0

    def add(
        self,
        online: Mapping[str, float | None],
        offline: Mapping[str, float | None],
        *,
        same_statuses: bool,
    ) -> list[str]:
        """Compare one event's vectors; returns the features that differ."""
        self.compared += 1
        self.status_mismatches += not same_statuses
        bad = [f for f in self.features if not agrees(online.get(f), offline.get(f))]
        for f in bad:
            self.mismatches[f] += 1
        return bad

    def ratio(self, feature: str) -> float:
        return self.mismatches[feature] / self.compared if self.compared else 0.0
