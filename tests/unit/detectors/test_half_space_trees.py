"""river is the oracle for Half-Space Trees: same seed, same trees, same scores.

Ours takes vectors where river takes dicts: feature ``k`` of a vector is river's
key ``k`` (integer keys, since river orders features by ``sorted(x)``). Per row,
ours ``update`` is river's ``score_one`` then ``learn_one``. The trees are drawn
with ``random.Random(seed)`` making river's calls in river's order, and all
masses are integers, so the scores come out identical (the tests allow 1e-12).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from river import anomaly

from streamscore.libs.detectors import HalfSpaceTrees

N = 2500


def _river_dict(row: list[float]) -> dict[int, float]:
    return dict(enumerate(row))


def _river_scores(model: Any, xs: np.ndarray) -> np.ndarray:
    scores = []
    for row in xs.tolist():
        x = _river_dict(row)
        scores.append(model.score_one(x))
        model.learn_one(x)
    return np.array(scores, dtype=np.float64)


def _stationary(rng: np.random.Generator, d: int) -> np.ndarray:
    return rng.uniform(0.0, 1.0, (N, d))


def _with_anomalies(rng: np.random.Generator, d: int) -> np.ndarray:
    """A tight cluster, 2% of rows anywhere in the unit box, and a moved cluster half-way."""
    xs = rng.normal(0.4, 0.05, (N, d))
    xs[N // 2 :] += 0.2
    out = rng.random(N) < 0.02
    xs[out] = rng.uniform(0.0, 1.0, (int(out.sum()), d))
    return np.clip(xs, 0.0, 1.0)


def _gaussian(rng: np.random.Generator, d: int) -> np.ndarray:
    """Unscaled features, for the ``limits`` cases (a few fall outside them)."""
    return rng.normal(0.0, 1.0, (N, d)) * np.arange(1, d + 1)


STREAMS: dict[str, Callable[[np.random.Generator, int], np.ndarray]] = {
    "stationary": _stationary,
    "anomalies": _with_anomalies,
}

# (name, constructor kwargs, number of features, streams)
CASES: list[tuple[str, dict[str, Any], int, dict[str, Any]]] = [
    ("defaults", {}, 4, STREAMS),
    ("small", {"n_trees": 25, "height": 5, "window_size": 60}, 3, STREAMS),
    ("one-feature", {"n_trees": 5, "height": 3, "window_size": 7}, 1, STREAMS),
    (
        "limits",
        {"n_trees": 8, "height": 6, "window_size": 100, "limits": [(-3, 3), (-6, 6), (-9, 9)]},
        3,
        {"gaussian": _gaussian},
    ),
]

PARAMS = [
    pytest.param(kwargs, d, make, seed, id=f"{name}-{stream}-{seed}")
    for name, kwargs, d, streams in CASES
    for stream, make in streams.items()
    for seed in (0, 1, 2)
]


def _river_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    out = dict(kwargs)
    if "limits" in out:
        out["limits"] = dict(enumerate(out["limits"]))
    return out


@pytest.mark.parametrize(("kwargs", "d", "make", "seed"), PARAMS)
def test_same_scores_as_river(
    kwargs: dict[str, Any],
    d: int,
    make: Callable[[np.random.Generator, int], np.ndarray],
    seed: int,
) -> None:
    xs = make(np.random.default_rng(seed), d)
    expected = _river_scores(anomaly.HalfSpaceTrees(seed=seed, **_river_kwargs(kwargs)), xs)
    got = HalfSpaceTrees(seed=seed, **kwargs).update_many(xs)
    window = kwargs.get("window_size", 250)
    assert (got[:window] == 0.0).all()  # the first window scores 0, as river's
    assert np.unique(got[window:]).size > 10
    np.testing.assert_allclose(got, expected, rtol=0.0, atol=1e-12)


def test_single_updates_match_river_and_read_the_score() -> None:
    xs = _with_anomalies(np.random.default_rng(5), 2)[:800]
    model = anomaly.HalfSpaceTrees(n_trees=10, height=6, window_size=50, seed=9)
    ours = HalfSpaceTrees(n_trees=10, height=6, window_size=50, seed=9)
    for row in xs:
        x = _river_dict(row.tolist())
        expected = model.score_one(x)
        model.learn_one(x)
        ours.update(row)
        assert abs(ours.score - expected) <= 1e-12


def _river_splits(node: Any) -> list[tuple[int, float]]:
    """river's splits in pre-order (root, left subtree, right subtree)."""
    if not hasattr(node, "feature"):
        return []
    return [
        (node.feature, node.threshold),
        *_river_splits(node.children[0]),
        *_river_splits(node.children[1]),
    ]


def _our_splits(feature: np.ndarray, threshold: np.ndarray, k: int = 0) -> list[tuple[int, float]]:
    if k >= feature.shape[0]:
        return []
    return [
        (int(feature[k]), float(threshold[k])),
        *_our_splits(feature, threshold, 2 * k + 1),
        *_our_splits(feature, threshold, 2 * k + 2),
    ]


@pytest.mark.parametrize("limits", [None, [(0.0, 1.0), (0.0, 10.0), (-1.0, 1.0)]])
def test_the_trees_are_river_trees(limits: list[tuple[float, float]] | None) -> None:
    river_limits = None if limits is None else dict(enumerate(limits))
    model = anomaly.HalfSpaceTrees(n_trees=4, height=4, seed=3, limits=river_limits)
    model.learn_one(_river_dict([0.5, 0.5, 0.5]))
    ours = HalfSpaceTrees(n_trees=4, height=4, seed=3, limits=limits)
    ours.update(np.array([0.5, 0.5, 0.5]))
    for t, tree in enumerate(model.trees):
        assert _our_splits(ours._feature[t], ours._threshold[t]) == _river_splits(tree)
    # The generator continues where river's does, too (nothing draws from it after that).
    assert tuple(ours._mt.tolist()) == model.rng.getstate()[1]


def test_non_finite_rows_are_skipped_like_a_filtered_river_stream() -> None:
    rng = np.random.default_rng(100)
    xs = _with_anomalies(rng, 3)
    bad = rng.random((N, 3)) < 0.01
    xs[bad] = rng.choice(np.array([np.nan, np.inf, -np.inf]), int(bad.sum()))
    finite = np.isfinite(xs).all(axis=1)
    kwargs: dict[str, Any] = {"n_trees": 10, "height": 6, "window_size": 100, "seed": 4}
    det = HalfSpaceTrees(**kwargs)
    got = det.update_many(xs)
    expected = _river_scores(anomaly.HalfSpaceTrees(**kwargs), xs[finite])
    assert np.isnan(got[~finite]).all()
    np.testing.assert_allclose(got[finite], expected, rtol=0.0, atol=1e-12)
    assert det.n_skipped == int((~finite).sum()) > 0


def test_river_learns_nan_rows_which_we_do_not() -> None:
    # Why the policy: river does not refuse a NaN; ``value < threshold`` is False, so
    # a NaN row walks down the right branches, is learned as mass there and scored
    # as if it were a normal point: the rows after it score differently from the
    # same stream without it.
    rng = np.random.default_rng(8)
    xs = _with_anomalies(rng, 2)[:600]
    xs[rng.choice(600, 30, replace=False), 0] = np.nan
    finite = np.isfinite(xs).all(axis=1)
    kwargs: dict[str, Any] = {"n_trees": 10, "height": 6, "window_size": 50, "seed": 1}
    river_raw = _river_scores(anomaly.HalfSpaceTrees(**kwargs), xs)
    river_filtered = _river_scores(anomaly.HalfSpaceTrees(**kwargs), xs[finite])
    assert np.isfinite(river_raw).all()  # no error, no NaN: silently learned
    assert not np.allclose(river_raw[finite], river_filtered)
    ours = HalfSpaceTrees(**kwargs).update_many(xs)
    np.testing.assert_allclose(ours[finite], river_filtered, rtol=0.0, atol=1e-12)


def test_scores_are_in_the_unit_interval_and_flag_injected_points() -> None:
    rng = np.random.default_rng(2)
    xs = rng.normal(0.5, 0.04, (3000, 3))
    spikes = np.arange(1000, 3000, 97)
    xs[spikes] = rng.uniform(0.0, 1.0, (spikes.size, 3))
    scores = HalfSpaceTrees(seed=0).update_many(xs)
    assert ((scores >= 0.0) & (scores <= 1.0)).all()
    normal = np.setdiff1d(np.arange(1000, 3000), spikes)
    assert np.median(scores[spikes]) > np.quantile(scores[normal], 0.99)
