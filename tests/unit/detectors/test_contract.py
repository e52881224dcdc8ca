"""The detector contract: batch == loop (D6), pickling (D5), NaN/inf policy, no fastmath (D2),
start-up compilation (D7), read-only flags."""

from __future__ import annotations

import importlib
import pickle
from typing import Any

import numpy as np
import pytest
from numba.core.registry import CPUDispatcher

from streamscore.libs.detectors import (
    ADWIN,
    CUSUM,
    DDM,
    DETECTORS,
    EDDM,
    HDDMA,
    KSWIN,
    CvMDrift,
    Detector,
    EWMAChart,
    KSDrift,
    PageHinkley,
    PSIDrift,
    WarningDetector,
    warmup,
)

BINARY = (DDM, EDDM, HDDMA)
POPULATION = (KSDrift, CvMDrift, PSIDrift)


def _stream(cls: type[Detector], seed: int, n: int = 8000, non_finite: bool = True) -> np.ndarray:
    """A drifting stream (several detections) sprinkled with NaN and ±inf."""
    rng = np.random.default_rng(seed)
    if cls in BINARY:
        rates = np.where((np.arange(n) // 2000) % 2 == 0, 0.1, 0.4)
        xs = (rng.random(n) < rates).astype(np.float64)
    else:
        xs = rng.normal(0.0, 1.0, n) + 2.0 * ((np.arange(n) // 2000) % 2)
    if non_finite:
        where = rng.random(n) < 0.01
        xs[where] = rng.choice(np.array([np.nan, np.inf, -np.inf]), int(where.sum()))
    return xs


def _small(cls: type[Detector]) -> Detector:
    # ADWIN with clock=1 so every element exercises the cut search; KSWIN seeded.
    if cls is ADWIN:
        return ADWIN(clock=1)
    if cls is KSWIN:
        return KSWIN(seed=1)
    if cls in POPULATION:  # a small reference and a quick calibration
        return cls(reference_size=500, window_size=100, stride=10, arl0=2_000, n_sim=20)  # type: ignore[call-arg]
    return cls()


def _flags(det: Detector, xs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(det, WarningDetector):
        return det.update_many_with_warnings(xs)
    return det.update_many(xs), np.zeros(xs.shape[0], dtype=bool)


def _loop(det: Detector, xs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    drifts, warns = [], []
    for x in xs.tolist():
        det.update(x)
        drifts.append(det.drift_detected)
        warns.append(det.warning_detected if isinstance(det, WarningDetector) else False)
    return np.array(drifts, dtype=bool), np.array(warns, dtype=bool)


def _assert_same_state(a: Detector, b: Detector) -> None:
    sa, sb = a.__getstate__(), b.__getstate__()
    assert sa["params"] == sb["params"]
    assert sa["state"].keys() == sb["state"].keys()
    for name in sa["state"]:
        np.testing.assert_array_equal(sa["state"][name], sb["state"][name], strict=True)


def test_every_detector_is_exported() -> None:
    assert set(DETECTORS) == {
        *(PageHinkley, ADWIN, DDM, EDDM, HDDMA, KSWIN, CUSUM, EWMAChart),
        *POPULATION,
    }


@pytest.mark.parametrize("cls", DETECTORS)
def test_update_many_equals_a_loop_of_update(cls: type[Detector]) -> None:
    xs = _stream(cls, seed=1)
    batch, loop = _small(cls), _small(cls)
    got = _flags(batch, xs)
    # A loop of update(), recording drift_detected (and warning_detected) after each
    # call, but masking skipped elements: their flag is False by definition.
    expected = _loop(loop, xs)
    finite = np.isfinite(xs)
    for g, e in zip(got, expected, strict=True):
        np.testing.assert_array_equal(g, e & finite)
    assert got[0].any()
    _assert_same_state(batch, loop)


@pytest.mark.parametrize("cls", DETECTORS)
@pytest.mark.parametrize("seed", range(3))
def test_split_batches_equal_one_batch(cls: type[Detector], seed: int) -> None:
    xs = _stream(cls, seed=seed)
    whole, parts = _small(cls), _small(cls)
    expected = _flags(whole, xs)
    cuts = np.sort(np.random.default_rng(seed).choice(xs.shape[0], 12, replace=False))
    pieces = [_flags(parts, chunk) for chunk in np.split(xs, cuts)]
    for i in range(2):
        np.testing.assert_array_equal(np.concatenate([p[i] for p in pieces]), expected[i])
    _assert_same_state(whole, parts)


@pytest.mark.parametrize("cls", DETECTORS)
def test_pickle_mid_stream_continues_identically(cls: type[Detector]) -> None:
    xs = _stream(cls, seed=2)
    det = _small(cls)
    _flags(det, xs[:3001])
    clone = pickle.loads(pickle.dumps(det))
    assert type(clone) is cls
    _assert_same_state(det, clone)
    expected = _flags(det, xs[3001:])
    got = _flags(clone, xs[3001:])
    for g, e in zip(got, expected, strict=True):
        np.testing.assert_array_equal(g, e)
    _assert_same_state(det, clone)


@pytest.mark.parametrize("cls", DETECTORS)
def test_pickled_state_is_plain_numpy_and_scalars(cls: type[Detector]) -> None:
    det = _small(cls)
    det.update_many(_stream(cls, seed=3, n=500))
    state = det.__getstate__()
    assert all(isinstance(v, np.ndarray) for v in state["state"].values())
    plain = (int, float, str, bool, tuple, type(None))
    assert all(isinstance(v, plain) for v in state["params"].values())


@pytest.mark.parametrize("cls", DETECTORS)
def test_non_finite_inputs_leave_the_state_untouched(cls: type[Detector]) -> None:
    det = _small(cls)
    det.update_many(_stream(cls, seed=4, n=1000, non_finite=False))
    before = pickle.loads(pickle.dumps(det))
    bad = np.array([np.nan, np.inf, -np.inf, np.nan])
    assert not det.update_many(bad).any()
    det.update(float("nan"))
    det.update(float("-inf"))
    assert det.n_skipped == 6
    after, expected = det.__getstate__()["state"], before.__getstate__()["state"]
    for name in expected:
        if name == "_i":  # only the skip counter (slot 2) moved
            np.testing.assert_array_equal(np.delete(after[name], 2), np.delete(expected[name], 2))
        else:
            np.testing.assert_array_equal(after[name], expected[name])


@pytest.mark.parametrize("cls", DETECTORS)
def test_a_drift_flag_survives_skipped_inputs_until_the_next_value(cls: type[Detector]) -> None:
    xs = _stream(cls, seed=5, non_finite=False)
    det = _small(cls)
    first = int(np.flatnonzero(_flags(_small(cls), xs)[0])[0])
    det.update_many(xs[: first + 1])
    assert det.drift_detected
    det.update(float("nan"))
    assert det.drift_detected  # describes the last accepted element
    det.update(float(xs[first + 1]))
    assert det.n_skipped == 1


@pytest.mark.parametrize("cls", DETECTORS)
def test_shapes_and_read_only_flags(cls: type[Detector]) -> None:
    det = cls()
    assert det.update_many(np.array([], dtype=np.float64)).shape == (0,)
    assert det.update_many([0, 1, 1]).dtype == np.bool_
    with pytest.raises(ValueError, match="1-D"):
        det.update_many(np.zeros((2, 2)))
    with pytest.raises(AttributeError):
        det.drift_detected = True  # type: ignore[misc]
    with pytest.raises(AttributeError):
        det.n_skipped = 0  # type: ignore[misc]
    if isinstance(det, WarningDetector):
        with pytest.raises(AttributeError):
            det.warning_detected = True  # type: ignore[misc]
    assert repr(det).startswith(cls.__name__ + "(")
    name = cls._PARAMS[0]
    with pytest.raises(AttributeError, match="constructor argument"):
        setattr(det, name, getattr(det, name))


@pytest.mark.parametrize(
    ("cls", "kwargs"),
    [
        (PageHinkley, {"mode": "sideways"}),
        (ADWIN, {"clock": 0}),
        (ADWIN, {"max_buckets": 1}),
        (EDDM, {"alpha": 0.8, "beta": 0.9}),
        (KSWIN, {"alpha": 1.5}),
        (KSWIN, {"window_size": 100, "stat_size": 51}),
        (KSWIN, {"stat_size": 0}),
    ],
)
def test_invalid_arguments_are_rejected(cls: type[Detector], kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        cls(**kwargs)


def _kernels() -> list[tuple[str, Any]]:
    out = []
    for cls in DETECTORS:
        module = importlib.import_module(cls.__module__)
        out += [
            (f"{module.__name__}.{name}", obj)
            for name, obj in vars(module).items()
            if isinstance(obj, CPUDispatcher)
        ]
    return out


def test_no_kernel_uses_fastmath() -> None:
    # FAULTS.md D2: every kernel checks NaN/inf (math.isfinite) or is called by one that does.
    kernels = _kernels()
    assert len(kernels) >= 2 * len(DETECTORS)
    offenders = [name for name, k in kernels if k.targetoptions.get("fastmath")]
    assert offenders == []


def test_warmup_compiles_every_update_kernel() -> None:
    # FAULTS.md D7: after warmup() the first live event runs compiled code.
    # (helpers called only from a kernel are compiled inside it, not on their own)
    warmup()
    entry = [(n, k) for n, k in _kernels() if n.rsplit(".", 1)[1] == "_update"]
    assert len(entry) == len(DETECTORS)
    for name, k in entry:
        assert k.signatures, f"{name} not compiled by warmup()"


@pytest.mark.parametrize("cls", DETECTORS)
def test_input_types_never_trigger_a_new_compilation(cls: type[Detector]) -> None:
    # FAULTS.md D7: one compiled signature per kernel, whatever the caller passes.
    warmup()
    det = cls()
    kernel = det._batch
    before = list(kernel.signatures)  # type: ignore[attr-defined]
    for x in (True, 1, np.float32(0.5), np.int64(0), 0.25):
        det.update(x)  # type: ignore[arg-type]
    det.update_many([1, 0, 1])
    det.update_many(np.array([0.5, 1.5], dtype=np.float32))
    det.update_many(np.arange(10, dtype=np.float64)[::2])  # non-contiguous
    assert list(kernel.signatures) == before  # type: ignore[attr-defined]
    assert len(before) == 1
