"""The anomaly detectors' contract: batch == loop (D6), pickling (D5), NaN/inf policy, no
fastmath (D2), start-up compilation (D7), read-only state, constructor-only configuration."""

from __future__ import annotations

import importlib
import pickle
from typing import Any

import numpy as np
import pytest
from numba.core.registry import CPUDispatcher

from streamscore.libs.detectors import (
    ANOMALY_DETECTORS,
    AnomalyDetector,
    EWMAResidual,
    HalfSpaceTrees,
    IsolationForest,
    RobustZScore,
    warmup,
)
from streamscore.libs.detectors._anomaly import UnivariateAnomalyDetector, VectorAnomalyDetector

VECTOR = (HalfSpaceTrees, IsolationForest)
D = 3


def _small(cls: type[AnomalyDetector], seed: int | None = 1) -> Any:
    """Small windows, so a few thousand elements cross many window boundaries."""
    if cls is HalfSpaceTrees:
        return HalfSpaceTrees(n_trees=5, height=5, window_size=50, seed=seed)
    if cls is IsolationForest:
        return IsolationForest(n_trees=20, sample_size=32, window_size=100, seed=seed)
    if cls is RobustZScore:
        return RobustZScore(window_size=30)
    return EWMAResidual(grace_period=10, alpha=0.1)


def _stream(cls: type[AnomalyDetector], seed: int, n: int = 3000, non_finite: bool = True) -> Any:
    """Values (or rows of D features in [0, 1]) with 2% outliers, sprinkled with NaN and ±inf."""
    rng = np.random.default_rng(seed)
    bad = np.array([np.nan, np.inf, -np.inf])
    if cls in VECTOR:
        xs = rng.uniform(0.3, 0.7, (n, D))
        out = rng.random(n) < 0.02
        xs[out] = rng.uniform(0.0, 1.0, (int(out.sum()), D))
        if non_finite:
            where = rng.random((n, D)) < 0.005
            xs[where] = rng.choice(bad, int(where.sum()))
        return xs
    xs = rng.normal(10.0, 2.0, n)
    out = rng.random(n) < 0.02
    xs[out] += rng.choice([-1.0, 1.0], int(out.sum())) * 15.0
    if non_finite:
        where = rng.random(n) < 0.01
        xs[where] = rng.choice(bad, int(where.sum()))
    return xs


def _finite(xs: np.ndarray) -> np.ndarray:
    return np.isfinite(xs).all(axis=1) if xs.ndim == 2 else np.isfinite(xs)


def _loop(det: Any, xs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scores, flags = [], []
    for x in xs:
        det.update(x)
        scores.append(det.score)
        flags.append(det.anomaly_detected if isinstance(det, UnivariateAnomalyDetector) else False)
    return np.array(scores), np.array(flags, dtype=bool)


def _batch(det: Any, xs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(det, UnivariateAnomalyDetector):
        return det.update_many_with_flags(xs)
    scores = det.update_many(xs)
    return scores, np.zeros(scores.shape[0], dtype=bool)


def _assert_same_state(a: AnomalyDetector, b: AnomalyDetector) -> None:
    sa, sb = a.__getstate__(), b.__getstate__()
    assert sa["params"] == sb["params"]
    assert sa["state"].keys() == sb["state"].keys()
    for name in sa["state"]:
        np.testing.assert_array_equal(sa["state"][name], sb["state"][name], strict=True)


def test_every_anomaly_detector_is_exported() -> None:
    assert set(ANOMALY_DETECTORS) == {HalfSpaceTrees, IsolationForest, RobustZScore, EWMAResidual}


@pytest.mark.parametrize("cls", ANOMALY_DETECTORS)
def test_update_many_equals_a_loop_of_update(cls: type[AnomalyDetector]) -> None:
    xs = _stream(cls, seed=1)
    batch, loop = _small(cls), _small(cls)
    scores, flags = _batch(batch, xs)
    loop_scores, loop_flags = _loop(loop, xs)
    finite = _finite(xs)
    # Skipped elements score NaN in a batch; in a loop, ``score`` still reads the last one.
    assert np.isnan(scores[~finite]).all() and not flags[~finite].any()
    np.testing.assert_array_equal(scores[finite], loop_scores[finite])
    np.testing.assert_array_equal(flags[finite], loop_flags[finite])
    assert np.unique(scores[finite]).size > 100  # really scoring, not a warm-up constant
    if isinstance(batch, UnivariateAnomalyDetector):
        assert flags.any()
    _assert_same_state(batch, loop)


@pytest.mark.parametrize("cls", ANOMALY_DETECTORS)
@pytest.mark.parametrize("seed", range(3))
def test_split_batches_equal_one_batch(cls: type[AnomalyDetector], seed: int) -> None:
    xs = _stream(cls, seed=seed)
    whole, parts = _small(cls), _small(cls)
    expected = _batch(whole, xs)
    cuts = np.sort(np.random.default_rng(seed).choice(xs.shape[0], 12, replace=False))
    pieces = [_batch(parts, chunk) for chunk in np.split(xs, cuts)]
    for k in range(2):
        np.testing.assert_array_equal(np.concatenate([p[k] for p in pieces]), expected[k])
    _assert_same_state(whole, parts)


@pytest.mark.parametrize("cls", ANOMALY_DETECTORS)
@pytest.mark.parametrize("at", [0, 1, 1777])
def test_pickle_mid_stream_continues_identically(cls: type[AnomalyDetector], at: int) -> None:
    # at=0: before the first element (vector detectors have not sized their state yet); the
    # unseeded generator must survive pickling too.
    xs = _stream(cls, seed=2)
    det = _small(cls, seed=None)
    _batch(det, xs[:at])
    clone = pickle.loads(pickle.dumps(det))
    assert type(clone) is cls
    _assert_same_state(det, clone)
    for g, e in zip(_batch(clone, xs[at:]), _batch(det, xs[at:]), strict=True):
        np.testing.assert_array_equal(g, e)
    assert det.score == clone.score
    _assert_same_state(det, clone)


@pytest.mark.parametrize("cls", ANOMALY_DETECTORS)
def test_pickled_state_is_plain_numpy_and_scalars(cls: type[AnomalyDetector]) -> None:
    det = _small(cls)
    _batch(det, _stream(cls, seed=3, n=500))
    state = det.__getstate__()
    assert all(isinstance(v, np.ndarray) for v in state["state"].values())
    plain = (int, float, str, bool, tuple, type(None))
    assert all(isinstance(v, plain) for v in state["params"].values())


@pytest.mark.parametrize("cls", ANOMALY_DETECTORS)
def test_non_finite_elements_leave_the_state_untouched(cls: type[AnomalyDetector]) -> None:
    det = _small(cls)
    _batch(det, _stream(cls, seed=4, n=1000, non_finite=False))
    before = pickle.loads(pickle.dumps(det))
    last = det.score
    if cls in VECTOR:
        bad = np.full((4, D), 0.5)
        bad[0, 0], bad[1, 2], bad[2, 1], bad[3] = np.nan, np.inf, -np.inf, np.nan
        single: list[Any] = [np.array([0.5, np.nan, 0.5]), [-np.inf, 0.5, 0.5]]
    else:
        bad = np.array([np.nan, np.inf, -np.inf, np.nan])
        single = [float("nan"), float("-inf")]
    scores, flags = _batch(det, bad)
    assert np.isnan(scores).all() and not flags.any()
    for x in single:
        det.update(x)
    assert det.n_skipped == 6
    assert det.score == last  # describes the last accepted element
    after, expected = det.__getstate__()["state"], before.__getstate__()["state"]
    for name in expected:
        if name == "_i":  # only the skip counter (slot 1) moved
            np.testing.assert_array_equal(np.delete(after[name], 1), np.delete(expected[name], 1))
        else:
            np.testing.assert_array_equal(after[name], expected[name])


@pytest.mark.parametrize("cls", ANOMALY_DETECTORS)
def test_shapes_and_read_only_state(cls: type[AnomalyDetector]) -> None:
    det = _small(cls)
    if isinstance(det, VectorAnomalyDetector):
        assert det.n_features == 0
        assert det.update_many(np.zeros((0, D))).shape == (0,)
        assert det.n_features == 0  # an empty batch does not fix the dimension
        assert det.update_many([[0, 1, 1], [1, 0, 0]]).dtype == np.float64
        assert det.n_features == D
        with pytest.raises(ValueError, match="2-D"):
            det.update_many(np.zeros(D))
        with pytest.raises(ValueError, match="features"):
            det.update_many(np.zeros((2, D + 1)))
        with pytest.raises(ValueError, match="features"):
            det.update([0.5])  # would broadcast: refused
        with pytest.raises(ValueError, match="1-D"):
            det.update(np.zeros((1, D)))
        with pytest.raises(AttributeError):
            det.n_features = 2  # type: ignore[misc]
    else:
        assert det.update_many(np.array([], dtype=np.float64)).shape == (0,)
        assert det.update_many([0, 1, 1]).dtype == np.float64
        with pytest.raises(ValueError, match="1-D"):
            det.update_many(np.zeros((2, 2)))
        with pytest.raises(AttributeError):
            det.anomaly_detected = True
    with pytest.raises(AttributeError):
        det.score = 0.0
    with pytest.raises(AttributeError):
        det.n_skipped = 0
    assert repr(det).startswith(cls.__name__ + "(")
    name = cls._PARAMS[0]
    with pytest.raises(AttributeError, match="constructor argument"):
        setattr(det, name, getattr(det, name))


@pytest.mark.parametrize(
    ("cls", "kwargs"),
    [
        (HalfSpaceTrees, {"n_trees": 0}),
        (HalfSpaceTrees, {"height": 0}),
        (HalfSpaceTrees, {"window_size": 0}),
        (HalfSpaceTrees, {"limits": [(0.0, 1.0), (2.0, 2.0)]}),
        (HalfSpaceTrees, {"limits": []}),
        (IsolationForest, {"n_trees": 0}),
        (IsolationForest, {"sample_size": 1}),
        (IsolationForest, {"sample_size": 300, "window_size": 200}),
        (RobustZScore, {"window_size": 0}),
        (RobustZScore, {"min_scale": -1.0}),
        (RobustZScore, {"min_scale": float("nan")}),
        (EWMAResidual, {"alpha": 0.0}),
        (EWMAResidual, {"alpha": 1.5}),
        (EWMAResidual, {"grace_period": 0}),
    ],
)
def test_invalid_arguments_are_rejected(cls: type[AnomalyDetector], kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        cls(**kwargs)


def test_limits_fix_the_number_of_features() -> None:
    det = HalfSpaceTrees(limits=[(0.0, 1.0), (-5.0, 5.0)], seed=0)
    assert det.n_features == 2  # trees drawn at construction
    with pytest.raises(ValueError, match="expected 2 features"):
        det.update_many(np.zeros((3, 3)))


def _kernels() -> list[tuple[str, Any]]:
    out = []
    for cls in ANOMALY_DETECTORS:
        module = importlib.import_module(cls.__module__)
        out += [
            (f"{module.__name__}.{name}", obj)
            for name, obj in vars(module).items()
            if isinstance(obj, CPUDispatcher)
        ]
    return out


def test_no_kernel_uses_fastmath() -> None:
    # FAULTS.md D2: every entry kernel tests math.isfinite, which fastmath would compile away.
    kernels = _kernels()
    assert len(kernels) >= len(ANOMALY_DETECTORS)
    offenders = [name for name, k in kernels if k.targetoptions.get("fastmath")]
    assert offenders == []


def test_warmup_compiles_every_update_kernel() -> None:
    # FAULTS.md D7: after warmup() the first live event runs compiled code.
    warmup()
    entry = [(n, k) for n, k in _kernels() if n.rsplit(".", 1)[1] == "_update"]
    assert len(entry) == len(ANOMALY_DETECTORS)
    for name, k in entry:
        assert k.signatures, f"{name} not compiled by warmup()"


@pytest.mark.parametrize("cls", ANOMALY_DETECTORS)
def test_input_types_never_trigger_a_new_compilation(cls: type[AnomalyDetector]) -> None:
    # FAULTS.md D7: one compiled signature per kernel, whatever the caller passes.
    for c in ANOMALY_DETECTORS:
        c.warmup()
    det = _small(cls)
    kernel = det._batch
    before = list(kernel.signatures)
    if cls in VECTOR:
        singles: list[Any] = [[1, 0, 1], (True, False, 0.5), np.array([0.1, 0.2, 0.3], np.float32)]
        for x in singles:
            det.update(x)
        det.update(np.arange(6, dtype=np.float64)[::2])  # non-contiguous
        det.update_many([[1, 0, 1]])
        det.update_many(np.ones((4, D), dtype=np.float32))
        det.update_many(np.asfortranarray(np.ones((4, D))))
        det.update_many(np.ones((4, 2 * D))[:, ::2])  # non-contiguous
    else:
        for x in (True, 1, np.float32(0.5), np.int64(0), 0.25):
            det.update(x)
        det.update_many([1, 0, 1])
        det.update_many(np.array([0.5, 1.5], dtype=np.float32))
        det.update_many(np.arange(10, dtype=np.float64)[::2])
    assert list(kernel.signatures) == before
    assert len(before) == 1
