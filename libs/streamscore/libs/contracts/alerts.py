"""Drift alerts of the monitor (``schemas/alerts/drift_alert``, topic ``alerts.drift``).

One alert is one incident on one stream: the change that confirmed first
(top-level fields) and the other (segment, signal) changes confirmed with it
(``related``). ``kind`` is ``drift``, or ``retrain_trigger`` when the rule for
retraining the stream's model fired (drift of its score or of enough of its
inputs), or ``rollback`` when the scorer's canary judge rolled a challenger
model back (v2; ``signal`` is the bound it broke, ``latency``, ``error_rate``,
``decision_rate`` or ``precision``, the baseline is the champion's cohort over
the same window, ``baseline_lag_s`` 0, and ``model_version`` the challenger's).
``alert_id`` is derived from what was detected, so a re-published
alert (a monitor restarted before its offsets were committed) has the same id.

>>> from datetime import datetime, timezone
>>> t = datetime(2026, 1, 9, 6, tzinfo=timezone.utc)
>>> a = DriftAlert(alert_id="a1", kind="drift", stream="transactions", segment="all",
...     signal="feature", feature="tx_amount", detector="page_hinkley",
...     first_evidence_at=t, confirmed_at=t, effect_sds=0.4, statistic=2.1,
...     evidence_events=410, baseline_events=398, mean=71.5, baseline_mean=55.2,
...     baseline_lag_s=86400, related=[], model_version="m1", reason="1 signal moved",
...     raised_at=t)
>>> a.kind, a.related
('drift', [])
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from streamscore.libs.contracts.base import Id, Message, Timestamp
from streamscore.libs.contracts.decisions import Version

#: Most related changes carried by one alert.
MAX_RELATED = 64

AlertKind = Literal["drift", "retrain_trigger", "rollback"]
SignalKind = Literal[
    "score", "decision_rate", "missing_rate", "feature", "latency", "error_rate", "precision"
]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
Count = Annotated[int, msgspec.Meta(ge=0)]


class Change(Message, frozen=True):
    """One confirmed change of one signal in one segment."""

    #: ``all`` or ``<rule>=<value>`` (e.g. ``sensor_type=temperature``).
    segment: Name
    signal: SignalKind
    #: The feature (``signal`` = feature) or the outcome (decision_rate); null otherwise.
    feature: Name | None
    #: Detector kind of the monitor's registry that confirmed it.
    detector: Name
    #: Event time where the evidence starts (start of its first slot).
    first_evidence_at: Timestamp
    #: Event time of the confirmation (end of the slot that confirmed it).
    confirmed_at: Timestamp
    #: Mean shift of the evidence window against its baseline, in standard deviations.
    effect_sds: float
    #: The detector's input at confirmation (standardised difference, clipped).
    statistic: float
    evidence_events: Count
    baseline_events: Count
    #: Mean of the signal over the evidence window and over its baseline (null: none).
    mean: float | None
    baseline_mean: float | None


class DriftAlert(Change, frozen=True):
    """An incident: the first confirmed change and the ones confirmed with it."""

    alert_id: Id
    kind: AlertKind
    stream: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    #: The baseline window is the evidence window this many seconds earlier (0: the same
    #: window, a canary's champion cohort).
    baseline_lag_s: Annotated[int, msgspec.Meta(ge=0)]
    related: Annotated[list[Change], msgspec.Meta(max_length=MAX_RELATED)]
    #: The model version scoring the stream at confirmation (``none``: no model).
    model_version: Version
    #: Why, in words: the signals that moved, or the retraining rule that fired.
    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=512)]
    #: Wall-clock time the monitor raised it.
    raised_at: Timestamp
