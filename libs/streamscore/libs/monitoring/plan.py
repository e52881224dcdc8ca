"""The watch plan: per stream, which signals the monitor compares, in which segments, how.

A **signal** is one number per scored event: the score, an indicator of one
decision outcome (its mean is that outcome's rate), one model feature, or the
share of missing cells in the model input. A **segment** is a slice of the
stream picked from the entity keys the scored-event log carries; every stream
has the segment ``all``. A **test** is one (segment, signal) pair: the
monitor runs one detector per test, and the number of tests of a stream is
what its thresholds are corrected for (:mod:`.registry`).

What is watched, and why (the plans in :data:`PLANS`):

* Event fields and windowed features of at most one day (``max_window_s``,
  checked). Longer windows (7 and 30 days, the terminal windows delayed by 7
  days, the 30-day amount z-score and time since the last event) lag a change
  by their length and keep moving for that long — also while a cold stream
  fills them — so they would confirm late and move for weeks; their inputs
  are watched through the short windows.
* Not the calendar features (``tx_during_weekend``, ``tx_during_night``,
  ``login_hour``): they are functions of the clock, so their "drift" is the
  calendar.
* Sensors: only the scale-free ``sensor_zscore_24h`` (each reading against its
  own sensor's last day). Raw readings pooled over machines move whenever a
  machine stops for repair (the pool loses its baseline) and, per machine,
  with wear: watching machines one by one is the failure model's and the
  anomaly detectors' job, not drift's.
* Segments come from the keys of the scored-event log (the entity keys). The
  log has no event attributes (channel, country), so transactions, logins
  and clicks are watched as a whole; sensors by sensor type (the suffix of
  ``sensor_id``: ``M007-temperature``), a closed set. A rule without a closed
  set keeps the first ``max_values`` values it meets and puts the rest in
  ``other``, so the number of tests stays bounded.

>>> p = PLANS["sensor_readings"]
>>> p.segment_names()[:3], len(p.segment_names())
(('all', 'sensor_type=vibration', 'sensor_type=temperature'), 5)
>>> [s.id for s in p.signals()][-3:]
['decision_rate:stop', 'missing_rate', 'feature:sensor_zscore_24h']
>>> p.tests
30
>>> SegmentRule("sensor_type", "sensor_id", part="suffix").value_of("M007-temperature")
'temperature'
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, get_args

from streamscore.libs.contracts.decisions import (
    ClickOutcome,
    LoginOutcome,
    SensorOutcome,
    TransactionOutcome,
)
from streamscore.libs.contracts.events import SensorType
from streamscore.libs.features.definitions import groups, model_features

SignalKind = Literal["score", "decision_rate", "missing_rate", "feature"]
Transform = Literal["identity", "symlog"]

#: The segment every stream has.
ALL = "all"
#: Where a segment rule puts values beyond its closed set or its cap.
OTHER = "other"
HOUR = 3600
DAY = 24 * HOUR

#: The decision outcomes of each stream (from the decision contracts).
OUTCOMES: Mapping[str, tuple[str, ...]] = {
    "transactions": get_args(TransactionOutcome),
    "logins": get_args(LoginOutcome),
    "sensor_readings": get_args(SensorOutcome),
    "clickstream": get_args(ClickOutcome),
}


@dataclass(frozen=True)
class Signal:
    """One number per scored event (see the module docstring).

    ``transform`` is applied before averaging: ``symlog`` is
    ``sign(x)·log(1 + |x|)``, so that heavy tails (amounts, counts, seconds)
    do not let one burst decide an hour; rates, scores and shares stay as they are.
    """

    kind: SignalKind
    name: str | None = None
    transform: Transform = "identity"
    #: ``up``: only increases are alerts (missing values becoming rarer is not a problem).
    direction: Literal["both", "up"] = "both"

    @property
    def id(self) -> str:
        """``score``, ``missing_rate``, ``decision_rate:block``, ``feature:tx_amount``."""
        return self.kind if self.name is None else f"{self.kind}:{self.name}"

    @property
    def is_model_input(self) -> bool:
        """Whether the signal describes what the model is fed (features, missing values)."""
        return self.kind in ("feature", "missing_rate")


@dataclass(frozen=True)
class SegmentRule:
    """Segments from one entity key of the scored-event log.

    ``part="suffix"`` keeps what follows the key value's last ``-``. With
    ``values`` the segments are that closed set (anything else is ``other``);
    without, the first ``max_values`` values met get a segment each.
    """

    name: str
    key: str
    part: Literal["whole", "suffix"] = "whole"
    values: tuple[str, ...] = ()
    max_values: int = 8

    def value_of(self, key_value: str | None) -> str | None:
        """The segment value of an entity key's value (``None`` when the key is absent)."""
        if not key_value:
            return None
        return key_value.rsplit("-", 1)[-1] if self.part == "suffix" else key_value

    @property
    def capacity(self) -> int:
        """Segments this rule can make, ``other`` included."""
        return (len(self.values) if self.values else self.max_values) + 1

    def segment(self, value: str) -> str:
        """The segment name of a value, e.g. ``sensor_type=temperature``."""
        return f"{self.name}={value}"


@dataclass(frozen=True)
class StreamPlan:
    """What the monitor watches on one stream and how it compares (module docstring).

    The comparison (:mod:`.comparison`): events fall into event-time slots of
    ``slot_s``; each closed slot is compared with the slot ``lag_slots``
    earlier (the same hours a day before, so daily seasonality cancels), as a
    standardised difference whose weight is capped at ``n_cap`` events per
    slot (so volume alone does not make a small difference significant). The
    first ``reference_slots`` comparisons of a test measure its
    over-dispersion; its detector then gets the differences, clipped at
    ``clip`` standard deviations. ``settle_s`` of event time after the
    monitor's first event are not compared (windowed features of a cold
    stream are still filling).
    """

    stream: str
    features: tuple[str, ...]
    segments: tuple[SegmentRule, ...] = ()
    #: Longest window (plus delay) a watched feature may have.
    max_window_s: int = DAY
    slot_s: int = HOUR
    lag_slots: int = 24
    #: Days of the same slot the baseline is taken from (their median from three on).
    baseline_days: int = 7
    settle_s: int = DAY
    lateness_s: int = 600
    #: Events further ahead of the watermark are set aside (unless most of a batch is).
    max_ahead_s: int = DAY
    reference_slots: int = 24
    min_slot_events: int = 5
    #: Non-zero values the slot or its baseline must hold to be compared (rates).
    min_occurrences: int = 5
    n_cap: int = 50
    clip: float = 2.5
    #: After an alarm, this much fresh event time must still show a shift of at least
    #: ``min_effect_sds`` standard deviations, the same way, for the change to stand.
    confirm_s: int = 6 * HOUR
    min_effect_sds: float = 0.2
    #: Detector kind (:data:`~streamscore.libs.monitoring.registry.REGISTRY`) and parameters.
    detector: str = "cusum"
    detector_params: Mapping[str, float] = field(default_factory=dict)
    #: Nominal mean event time between false alarms of the whole stream (all tests), by
    #: the Gaussian approximation; bursty and slowly moving signals fall short of it, which
    #: the confirmation and ``min_effect_sds`` make up for (README: what was measured).
    run_length_s: int = 365 * DAY
    #: Detections confirmed within this much event time of an incident's first join it.
    gather_s: int = 3 * HOUR
    #: No second alert for a (segment, signal) within this much event time.
    cooldown_s: int = 2 * DAY
    #: Alerts of the stream published per wall-clock minute at most (the rest are counted).
    max_alerts_per_minute: int = 10
    #: Retraining: a score drift, or this many model-input signals, within ``retrain_window_s``.
    retrain_min_inputs: int = 2
    retrain_window_s: int = DAY
    retrain_cooldown_s: int = 7 * DAY

    def __post_init__(self) -> None:
        known = set(model_features(self.stream))
        unknown = [f for f in self.features if f not in known]
        if unknown:
            raise ValueError(f"{self.stream}: not model features: {unknown}")
        windows = {f.name: f.window_s + f.delay_s for g in groups(self.stream) for f in g.features}
        long = [f for f in self.features if windows.get(f, 0) > self.max_window_s]
        if long:
            raise ValueError(f"{self.stream}: windows longer than {self.max_window_s} s: {long}")
        if self.lag_slots < 1 or self.reference_slots < 2 or self.n_cap < 1:
            raise ValueError("lag_slots >= 1, reference_slots >= 2 and n_cap >= 1 are required")

    @property
    def outcomes(self) -> tuple[str, ...]:
        return OUTCOMES[self.stream]

    def signals(self) -> tuple[Signal, ...]:
        """Every signal, in the order of the monitor's columns."""
        return (
            Signal("score"),
            *(Signal("decision_rate", o) for o in self.outcomes),
            Signal("missing_rate", direction="up"),
            *(Signal("feature", f, "symlog") for f in self.features),
        )

    def segment_names(self) -> tuple[str, ...]:
        """Every segment a closed-set rule can make (first-come rules add theirs as met)."""
        names = [ALL]
        for rule in self.segments:
            names += [rule.segment(v) for v in rule.values]
            names.append(rule.segment(OTHER))
        return tuple(names)

    @property
    def max_segments(self) -> int:
        return 1 + sum(rule.capacity for rule in self.segments)

    @property
    def tests(self) -> int:
        """(segment, signal) pairs at most: what thresholds are corrected for."""
        return self.max_segments * len(self.signals())

    def fingerprint(self) -> str:
        """Changes whenever the plan does (a saved monitor state is only reused under it)."""
        doc = json.dumps(asdict(self), sort_keys=True, default=str)
        return hashlib.sha256(doc.encode()).hexdigest()[:16]


_SLOTS_3H: dict[str, Any] = {"slot_s": 3 * HOUR, "lag_slots": 8, "reference_slots": 8}

PLANS: Mapping[str, StreamPlan] = {
    "transactions": StreamPlan(
        "transactions",
        features=(
            "tx_amount",
            "customer_nb_tx_1d",
            "customer_avg_amount_1d",
            "customer_distinct_terminals_1d",
        ),
    ),
    "logins": StreamPlan(
        "logins",
        # Credential stuffing comes in bursts of ten minutes (a few a day, sizes varying
        # six-fold): an hour with one is no change. Three-hour slots average them.
        **_SLOTS_3H,
        features=(
            "login_success",
            "account_attempts_1h",
            "account_failures_1h",
            "account_distinct_ips_1d",
            "ip_attempts_10m",
            "ip_distinct_accounts_1h",
            "ip_failures_1h",
        ),
    ),
    "sensor_readings": StreamPlan(
        "sensor_readings",
        features=("sensor_zscore_24h",),
        segments=(SegmentRule("sensor_type", "sensor_id", "suffix", values=get_args(SensorType)),),
    ),
    "clickstream": StreamPlan(
        "clickstream",
        # A scripted bot session (tens of clicks in a minute) can dominate an hour of a
        # small shop's clicks: three-hour slots average them.
        **_SLOTS_3H,
        features=(
            "click_is_purchase",
            "click_is_add_to_cart",
            "session_events_30m",
            "session_mean_gap_30m",
            "session_std_gap_30m",
            "session_distinct_pages_30m",
            "session_add_to_cart_30m",
            "session_secs_since_last",
        ),
    ),
}


def plan_for(stream: str) -> StreamPlan:
    """The watch plan of a stream."""
    try:
        return PLANS[stream]
    except KeyError:
        raise KeyError(f"no watch plan for {stream!r}; known: {sorted(PLANS)}") from None
