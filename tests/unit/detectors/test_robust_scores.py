"""RobustZScore and EWMAResidual against brute-force numpy references on random streams.

River has neither; the references recompute each score from scratch: numpy's
``median`` of the previous window (and of its absolute deviations), and the
explicitly weighted mean and variance of every value before.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from streamscore.libs.detectors import EWMAResidual, RobustZScore
from streamscore.libs.detectors.robust_zscore import MAD_TO_SD


def _ratio(dev: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """dev / scale, with the detectors' convention for a zero scale: 0 or ±inf."""
    out = np.zeros_like(dev)
    pos = scale > 0.0
    out[pos] = dev[pos] / scale[pos]
    out[~pos & (dev != 0.0)] = np.copysign(np.inf, dev[~pos & (dev != 0.0)])
    return out


def robust_reference(xs: np.ndarray, window: int, min_scale: float) -> np.ndarray:
    """Score of xs[t]: (xs[t] - median) / max(1.4826 * MAD, min_scale) over xs[t - window : t]."""
    n = xs.shape[0]
    dev = np.zeros(n)
    scale = np.ones(n)
    for t in range(window, n):
        past = xs[t - window : t]
        med = np.median(past)
        dev[t] = xs[t] - med
        scale[t] = max(MAD_TO_SD * np.median(np.abs(past - med)), min_scale)
    return _ratio(dev, scale)


def ewma_reference(xs: np.ndarray, alpha: float, grace_period: int) -> np.ndarray:
    """Score of xs[t] from the weights (1-a)**(t-1) on xs[0] and a(1-a)**(t-1-k) on xs[k]."""
    n = xs.shape[0]
    dev = np.zeros(n)
    scale = np.ones(n)
    for t in range(grace_period, n):
        w = alpha * (1.0 - alpha) ** (t - 1 - np.arange(t))
        w[0] = (1.0 - alpha) ** (t - 1)
        mean = np.sum(w * xs[:t])
        dev[t] = xs[t] - mean
        scale[t] = np.sqrt(np.sum(w * (xs[:t] - mean) ** 2))
    return _ratio(dev, scale)


def _normal(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.normal(5.0, 2.0, n)


def _heavy_tailed_with_level_shift(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.standard_t(2.0, n) + 10.0 * (np.arange(n) >= n // 2)


def _counts(rng: np.random.Generator, n: int) -> np.ndarray:
    """Login counts: many ties, so windows with a zero MAD (±inf scores) occur."""
    return rng.poisson(0.3, n).astype(np.float64)


STREAMS: dict[str, Callable[[np.random.Generator, int], np.ndarray]] = {
    "normal": _normal,
    "heavy": _heavy_tailed_with_level_shift,
    "counts": _counts,
}


def _assert_scores(got: np.ndarray, expected: np.ndarray, rtol: float) -> None:
    assert (np.isinf(got) == np.isinf(expected)).all()
    np.testing.assert_array_equal(got[np.isinf(got)], expected[np.isinf(expected)])
    finite = np.isfinite(expected)
    np.testing.assert_allclose(got[finite], expected[finite], rtol=rtol, atol=1e-12)


@pytest.mark.parametrize("stream", STREAMS)
@pytest.mark.parametrize(
    ("window", "min_scale"), [(1, 0.0), (2, 0.0), (7, 0.0), (64, 0.0), (51, 0.5)]
)
@pytest.mark.parametrize("seed", range(2))
def test_robust_zscore_matches_numpy_medians(
    stream: str, window: int, min_scale: float, seed: int
) -> None:
    xs = STREAMS[stream](np.random.default_rng(seed), 3000)
    det = RobustZScore(window_size=window, threshold=3.5, min_scale=min_scale)
    got, flags = det.update_many_with_flags(xs)
    expected = robust_reference(xs, window, min_scale)
    _assert_scores(got, expected, rtol=1e-12)
    np.testing.assert_array_equal(flags, np.abs(expected) > 3.5)
    if stream == "counts" and min_scale == 0.0 and window > 2:
        assert np.isinf(got).any()  # a zero MAD was met, and scored as documented


@pytest.mark.parametrize("stream", ["normal", "heavy"])
@pytest.mark.parametrize(("alpha", "grace"), [(0.01, 30), (0.1, 5), (0.5, 2), (1.0, 1)])
@pytest.mark.parametrize("seed", range(2))
def test_ewma_residual_matches_explicit_weights(
    stream: str, alpha: float, grace: int, seed: int
) -> None:
    xs = STREAMS[stream](np.random.default_rng(seed), 1500)
    det = EWMAResidual(alpha=alpha, grace_period=grace, threshold=4.0)
    got, flags = det.update_many_with_flags(xs)
    expected = ewma_reference(xs, alpha, grace)
    # The recursion and the explicit sums round differently: relative 1e-9.
    _assert_scores(got, expected, rtol=1e-9)
    borderline = np.isclose(np.abs(expected), 4.0, rtol=1e-9)
    np.testing.assert_array_equal(flags[~borderline], (np.abs(expected) > 4.0)[~borderline])


@pytest.mark.parametrize(
    ("make", "reference"),
    [
        (lambda: RobustZScore(window_size=40), lambda xs: robust_reference(xs, 40, 0.0)),
        (lambda: EWMAResidual(alpha=0.05), lambda xs: ewma_reference(xs, 0.05, 30)),
    ],
    ids=["robust", "ewma"],
)
def test_non_finite_values_are_skipped_like_a_filtered_stream(
    make: Callable[[], RobustZScore | EWMAResidual],
    reference: Callable[[np.ndarray], np.ndarray],
) -> None:
    rng = np.random.default_rng(3)
    xs = _heavy_tailed_with_level_shift(rng, 1500)
    where = rng.random(1500) < 0.02
    xs[where] = rng.choice(np.array([np.nan, np.inf, -np.inf]), int(where.sum()))
    finite = np.isfinite(xs)
    det = make()
    got = det.update_many(xs)
    assert np.isnan(got[~finite]).all()
    _assert_scores(got[finite], reference(xs[finite]), rtol=1e-9)
    assert det.n_skipped == int((~finite).sum())


def test_the_median_resists_an_outlier_burst_the_ewma_does_not() -> None:
    # Documented trade-off: a burst of outliers inflates the EWMA variance and masks the
    # next ones; the window's median and MAD barely move.
    rng = np.random.default_rng(4)
    xs = rng.normal(0.0, 1.0, 1000)
    xs[600:605] = 12.0
    xs[610] = 8.0
    robust = RobustZScore(window_size=100).update_many(xs)
    ewma = EWMAResidual(alpha=0.05).update_many(xs)
    assert robust[610] > 6.0
    assert ewma[610] < 3.5
    assert (robust[600:605] > 6.0).all()
