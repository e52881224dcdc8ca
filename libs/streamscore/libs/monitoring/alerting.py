"""From detections to alerts: one incident per cause, cooldowns, a rate cap, retraining triggers.

Rules, in the order they apply (event times are the stream's, so a replay of
the same log raises the same alerts with the same ids):

1. **Cooldown.** A (segment, signal) alerted less than ``cooldown_s`` ago
   (by confirmation time) is not alerted again; the detection is counted as
   suppressed (``cooldown``).
2. **One cause, one alert.** Detections confirmed within ``gather_s`` of
   event time of the first one of an open incident join it. The incident is
   published once the watermark has passed that window: one ``drift`` alert
   whose top-level change is the first confirmed (the largest effect on a
   tie) and whose ``related`` list holds the others (a drifting amount moves
   the amount, the daily mean amount, the score and the block rate at once).
3. **Rate cap.** At most ``max_alerts_per_minute`` drift alerts of the stream
   per wall-clock minute are published; the rest are counted (``rate_cap``),
   not sent: a storm is visible in the metrics, not in the pager.
4. **Retraining trigger.** When an incident is published for a stream that a
   model scores (``model_version`` is not ``none``), and within
   ``retrain_window_s`` before its confirmation the score drifted, or at least
   ``retrain_min_inputs`` distinct model inputs (features, missing rate) did,
   a ``retrain_trigger`` alert is published too (not capped), at most once per
   ``retrain_cooldown_s``. A drift of decision rates alone does not trigger:
   they also move when a policy's thresholds change, with the model fine.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from streamscore.libs.contracts.alerts import MAX_RELATED, AlertKind, Change, DriftAlert
from streamscore.libs.monitoring.comparison import Detection
from streamscore.libs.monitoring.plan import StreamPlan

_MAX_REASON = 512


def _ts(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def change_of(d: Detection) -> Change:
    """The contract form of a detection."""
    return Change(
        segment=d.segment,
        signal=d.signal.kind,
        feature=d.signal.name,
        detector=d.detector,
        first_evidence_at=_ts(d.first_evidence_s),
        confirmed_at=_ts(d.confirmed_s),
        effect_sds=round(d.effect_sds, 6),
        statistic=round(d.statistic, 6),
        evidence_events=d.evidence_events,
        baseline_events=d.baseline_events,
        mean=None if d.mean is None else round(d.mean, 9),
        baseline_mean=None if d.baseline_mean is None else round(d.baseline_mean, 9),
    )


def describe(d: Detection) -> str:
    """``feature:tx_amount +0.28 sd (all)``."""
    return f"{d.signal.id} {d.effect_sds:+.2f} sd ({d.segment})"


def alert_id(stream: str, kind: AlertKind, head: Detection) -> str:
    """Derived from what was detected, so a re-published alert keeps its id."""
    key = f"{stream}|{kind}|{head.segment}|{head.signal.id}|{head.confirmed_s:.0f}"
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def build_alert(
    plan: StreamPlan,
    kind: AlertKind,
    detections: Sequence[Detection],
    *,
    model_version: str,
    reason: str,
    raised_at: datetime,
) -> DriftAlert:
    """One alert: the first detection on top, the others related."""
    head, *rest = detections
    top = change_of(head)
    return DriftAlert(
        alert_id=alert_id(plan.stream, kind, head),
        kind=kind,
        stream=plan.stream,
        baseline_lag_s=plan.lag_slots * plan.slot_s,
        related=[change_of(d) for d in rest[:MAX_RELATED]],
        model_version=model_version,
        reason=reason[:_MAX_REASON],
        raised_at=raised_at,
        **{f: getattr(top, f) for f in top.__struct_fields__},
    )


@dataclass
class AlertDesk:
    """Alert state of one stream (see the module docstring); pickles with the watch."""

    plan: StreamPlan
    #: ``segment|signal`` -> confirmation time (s) of its last alerted detection.
    last_alerted: dict[str, float] = field(default_factory=dict)
    incident: list[Detection] = field(default_factory=list)
    #: Alerted detections of the last ``retrain_window_s`` (for rule 4).
    recent: list[Detection] = field(default_factory=list)
    last_retrain_s: float | None = None
    suppressed: Counter[str] = field(default_factory=Counter)
    _minute: int = -1
    _in_minute: int = 0

    @staticmethod
    def key(d: Detection) -> str:
        return f"{d.segment}|{d.signal.id}"

    def offer(self, detections: Sequence[Detection]) -> None:
        """Rules 1-2: cooled-down detections are counted; the others join the incident."""
        for d in sorted(detections, key=lambda d: (d.confirmed_s, -abs(d.effect_sds))):
            last = self.last_alerted.get(self.key(d))
            if last is not None and d.confirmed_s - last < self.plan.cooldown_s:
                self.suppressed["cooldown"] += 1
                continue
            self.last_alerted[self.key(d)] = d.confirmed_s
            self.incident.append(d)

    @staticmethod
    def marks(alert: DriftAlert) -> dict[str, float]:
        """The (segment|signal → confirmation time) a published drift alert covers."""
        if alert.kind != "drift":
            return {}
        changes: list[Change] = [alert, *alert.related]
        return {
            f"{c.segment}|{c.signal if c.feature is None else f'{c.signal}:{c.feature}'}": (
                c.confirmed_at.timestamp()
            )
            for c in changes
        }

    def remember(self, marks: dict[str, float]) -> None:
        """Adopt alert times recorded elsewhere (the service's store, after a restart)."""
        for k, t in marks.items():
            self.last_alerted[k] = max(t, self.last_alerted.get(k, t))

    def due(
        self, watermark: float | None, *, model_version: str, now: datetime
    ) -> list[DriftAlert]:
        """Rules 2-4: the alerts to publish now (the incident, once its window has passed)."""
        if not self.incident or watermark is None:
            return []
        first = self.incident[0].confirmed_s
        if watermark < first + self.plan.gather_s:
            return []
        detections, self.incident = self.incident, []
        out: list[DriftAlert] = []
        minute = int(now.timestamp() // 60)
        if minute != self._minute:
            self._minute, self._in_minute = minute, 0
        if self._in_minute < self.plan.max_alerts_per_minute:
            self._in_minute += 1
            moved = ", ".join(describe(d) for d in detections[:8])
            more = f" and {len(detections) - 8} more" if len(detections) > 8 else ""
            reason = f"{len(detections)} signal(s) moved: {moved}{more}"
            out.append(
                build_alert(
                    self.plan,
                    "drift",
                    detections,
                    model_version=model_version,
                    reason=reason,
                    raised_at=now,
                )
            )
        else:
            self.suppressed["rate_cap"] += 1
        trigger = self._retrain(detections, model_version=model_version, now=now)
        if trigger is not None:
            out.append(trigger)
        return out

    def _retrain(
        self, detections: Sequence[Detection], *, model_version: str, now: datetime
    ) -> DriftAlert | None:
        """Rule 4."""
        latest = max(d.confirmed_s for d in detections)
        window = self.plan.retrain_window_s
        self.recent = [d for d in (*self.recent, *detections) if latest - d.confirmed_s <= window]
        if model_version == "none":
            return None
        if self.last_retrain_s is not None and (
            latest - self.last_retrain_s < self.plan.retrain_cooldown_s
        ):
            return None
        scores = [d for d in self.recent if d.signal.kind == "score"]
        inputs: dict[str, Detection] = {}
        for d in self.recent:
            if d.signal.is_model_input:
                inputs.setdefault(d.signal.id, d)
        if scores:
            why = f"the score drifted: {describe(scores[0])}"
            used = [*scores, *inputs.values()]
        elif len(inputs) >= self.plan.retrain_min_inputs:
            hours = window / 3600
            why = f"{len(inputs)} model inputs drifted within {hours:g} h: " + ", ".join(
                describe(d) for d in list(inputs.values())[:8]
            )
            used = list(inputs.values())
        else:
            return None
        self.last_retrain_s = latest
        return build_alert(
            self.plan,
            "retrain_trigger",
            used,
            model_version=model_version,
            reason=f"retrain {model_version}: {why}",
            raised_at=now,
        )
