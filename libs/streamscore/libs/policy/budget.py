"""The exposure breaker: how many degraded approvals (and how much money) per minute.

When the decision path is degraded (no model score, or features missing
because the store is down), approving blindly is a risk the business caps.
The breaker counts degraded approvals over a sliding minute; past the cap it
says no and the policy escalates (FAULTS R4). Time comes from the caller.

>>> b = DegradedBudget(max_approvals_per_minute=2, max_exposure_per_minute=100.0)
>>> [b.allow(now_s=0.0, exposure=40.0) for _ in range(3)]
[True, True, False]
>>> b.allow(now_s=61.0, exposure=90.0), b.allow(now_s=61.5, exposure=20.0)
(True, False)
"""

from __future__ import annotations

from collections import deque

WINDOW_S = 60.0


class DegradedBudget:
    """Sliding one-minute budget of degraded approvals, by count and by exposure."""

    def __init__(
        self, *, max_approvals_per_minute: int, max_exposure_per_minute: float | None = None
    ) -> None:
        self.max_count = max_approvals_per_minute
        self.max_exposure = max_exposure_per_minute
        self._granted: deque[tuple[float, float]] = deque()
        self._exposure = 0.0
        self.refused = 0
        self.granted_total = 0
        self.exposure_total = 0.0

    def _expire(self, now_s: float) -> None:
        while self._granted and self._granted[0][0] <= now_s - WINDOW_S:
            _t, amount = self._granted.popleft()
            self._exposure -= amount

    def allow(self, *, now_s: float, exposure: float = 0.0) -> bool:
        """Grant one degraded approval of ``exposure`` now, if the minute's budget allows."""
        self._expire(now_s)
        over_count = len(self._granted) >= self.max_count
        over_money = self.max_exposure is not None and self._exposure + exposure > self.max_exposure
        if over_count or over_money:
            self.refused += 1
            return False
        self._granted.append((now_s, exposure))
        self._exposure += exposure
        self.granted_total += 1
        self.exposure_total += exposure
        return True

    @property
    def exposure_last_minute(self) -> float:
        return self._exposure
