"""An event-time exponentially weighted mean whose result does not depend on arrival order.

With decay rate ``λ = ln 2 / half_life``, the state at reference time ``T``
(the latest event time seen) is ``S = Σ x_i·e^{-λ(T - t_i)}`` and
``W = Σ e^{-λ(T - t_i)}``; the mean is ``S / W``. An event newer than ``T``
decays the state to its time first; an older one (out of order) is added
already decayed to ``T``. Both sums are commutative, so the same events in
any order give the same state (up to float rounding), which is what makes the
online value equal the offline one. A read at ``t >= T`` is ``S / W`` (the
decay factor cancels); reads at ``t < T`` also give the value as of ``T``.

>>> a, b = Ewma(3600.0), Ewma(3600.0)
>>> for t, x in ((0, 1.0), (3600, 3.0)):
...     a.add(t * 1_000_000, x)
>>> for t, x in ((3600, 3.0), (0, 1.0)):  # the same events, out of order
...     b.add(t * 1_000_000, x)
>>> round(a.mean or 0, 12) == round(b.mean or 0, 12), round(a.mean or 0, 4)
(True, 2.3333)
"""

from __future__ import annotations

import math


class Ewma:
    """Time-decayed mean with half-life ``half_life_s`` (seconds)."""

    __slots__ = ("lam", "s", "t_ref", "w")

    def __init__(self, half_life_s: float) -> None:
        if half_life_s <= 0:
            raise ValueError("half_life_s must be > 0")
        self.lam = math.log(2.0) / (half_life_s * 1e6)  # per microsecond
        self.s = 0.0
        self.w = 0.0
        self.t_ref: int | None = None

    def add(self, t_us: int, x: float) -> None:
        if self.t_ref is None or t_us >= self.t_ref:
            decay = 1.0 if self.t_ref is None else math.exp(-self.lam * (t_us - self.t_ref))
            self.s = self.s * decay + x
            self.w = self.w * decay + 1.0
            self.t_ref = t_us
        else:
            decay = math.exp(-self.lam * (self.t_ref - t_us))
            self.s += x * decay
            self.w += decay

    @property
    def mean(self) -> float | None:
        return None if self.w == 0.0 else self.s / self.w

    def to_list(self) -> list[float | int | None]:
        return [self.s, self.w, self.t_ref]

    @classmethod
    def from_list(cls, half_life_s: float, data: list[float | int | None]) -> Ewma:
        e = cls(half_life_s)
        s, w, t_ref = data
        e.s, e.w = float(s or 0.0), float(w or 0.0)
        e.t_ref = None if t_ref is None else int(t_ref)
        return e
