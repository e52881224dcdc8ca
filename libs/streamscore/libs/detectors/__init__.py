"""Numba drift detectors, river-shaped and river-exact.

Each detector is a documented class with river's constructor arguments,
``update(x)``, ``update_many(xs)`` (a bool drift flag per element, identical to
a loop of ``update``), read-only ``drift_detected`` (and ``warning_detected``
where river has it) and ``n_skipped``; it pickles to plain numpy arrays and
scalars and continues identically after unpickling.

NaN/inf policy, the same for every detector: non-finite inputs are skipped
(state unchanged, counted in ``n_skipped``, output flag ``False``).

Anomaly detectors (``ANOMALY_DETECTORS``: Half-Space Trees, a windowed
isolation forest, robust z-score, EWMA residual) score each element before
learning it: ``update_many`` returns the scores, ``score`` reads the last one;
non-finite elements score NaN and are not learned (see ``_anomaly``).

Call ``warmup()`` at service start-up so every kernel is compiled (or loaded
from Numba's cache) before the first live event (FAULTS.md D7).
"""

from __future__ import annotations

import numpy as np

from streamscore.libs.detectors._anomaly import AnomalyDetector
from streamscore.libs.detectors._base import Detector, WarningDetector
from streamscore.libs.detectors.adwin import ADWIN
from streamscore.libs.detectors.cusum import CUSUM
from streamscore.libs.detectors.cusum_bank import CUSUMBank
from streamscore.libs.detectors.cvm import CvMDrift
from streamscore.libs.detectors.ddm import DDM
from streamscore.libs.detectors.eddm import EDDM
from streamscore.libs.detectors.ewma_chart import EWMAChart
from streamscore.libs.detectors.ewma_residual import EWMAResidual
from streamscore.libs.detectors.half_space_trees import HalfSpaceTrees
from streamscore.libs.detectors.hddm_a import HDDMA
from streamscore.libs.detectors.isolation_forest import IsolationForest
from streamscore.libs.detectors.ks import KSDrift
from streamscore.libs.detectors.kswin import KSWIN
from streamscore.libs.detectors.page_hinkley import PageHinkley
from streamscore.libs.detectors.psi import PSIDrift
from streamscore.libs.detectors.robust_zscore import RobustZScore

__all__ = [
    "ADWIN",
    "ANOMALY_DETECTORS",
    "CUSUM",
    "DDM",
    "DETECTORS",
    "EDDM",
    "HDDMA",
    "KSWIN",
    "AnomalyDetector",
    "CUSUMBank",
    "CvMDrift",
    "Detector",
    "EWMAChart",
    "EWMAResidual",
    "HalfSpaceTrees",
    "IsolationForest",
    "KSDrift",
    "PSIDrift",
    "PageHinkley",
    "RobustZScore",
    "WarningDetector",
    "warmup",
]

DETECTORS: tuple[type[Detector], ...] = (
    PageHinkley,
    ADWIN,
    DDM,
    EDDM,
    HDDMA,
    KSWIN,
    CUSUM,
    EWMAChart,
    KSDrift,
    CvMDrift,
    PSIDrift,
)

ANOMALY_DETECTORS: tuple[type[AnomalyDetector], ...] = (
    HalfSpaceTrees,
    IsolationForest,
    RobustZScore,
    EWMAResidual,
)


def warmup() -> None:
    """Compile (or load from cache) every detector kernel: both update paths, and the reset."""
    xs = np.array([0.0, 1.0, np.nan, 0.0], dtype=np.float64)
    for cls in DETECTORS:
        det = cls()
        det.update_many(xs)
        det.update(0.0)
        if isinstance(det, WarningDetector):
            det.update_many_with_warnings(xs)
    for anomaly in ANOMALY_DETECTORS:
        anomaly.warmup()
    CUSUMBank(2, h=5.0).update_many(np.array([0, 1, 0, 1]), xs)
