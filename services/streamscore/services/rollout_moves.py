"""What a scorer's challenger runner writes when a challenger moves: the ``rollback`` alert of
a rejected canary or shadow, and a plan's moves in the model store (:func:`apply_step`);
and the ``rollback`` alert of the retrainer's late judge (:func:`late_rollback_alert`).

Split from :mod:`.rollout` (which decides when) to keep each module to one concern.
"""

from __future__ import annotations

import hashlib
import math
from datetime import datetime

from streamscore.libs.contracts.alerts import Change, DriftAlert
from streamscore.libs.rollout.judge import Breach, Verdict
from streamscore.libs.rollout.late_judge import LateVerdict
from streamscore.libs.rollout.progression import Step
from streamscore.services.model_store import Challenger, ModelStore

#: The audit's name for moves made by a plan.
PROGRESSION_BY = "rollout-progression"


def _alert_id(stream: str, challenger: Challenger) -> str:
    """One id per rolled-back challenger (a re-published alert keeps it)."""
    ref = challenger.ref
    seed = f"{stream}|{ref.version}|{ref.onnx_sha256}|{ref.promoted_at.isoformat()}"
    return "rollback-" + hashlib.blake2b(seed.encode(), digest_size=12).hexdigest()


def _change(b: Breach, *, since: datetime, now: datetime, events: tuple[int, int]) -> Change:
    return Change(
        segment="all",
        signal=b.reason,
        feature=b.signal if b.reason == "decision_rate" else None,
        detector="canary_judge",
        first_evidence_at=since,
        confirmed_at=now,
        effect_sds=round(b.z, 4) if b.z is not None and math.isfinite(b.z) else 0.0,
        statistic=round(b.z if b.z is not None else b.challenger / max(b.champion, 1e-9), 4),
        evidence_events=events[0],
        baseline_events=events[1],
        mean=b.challenger,
        baseline_mean=b.champion,
    )


def rollback_alert(
    stream: str,
    challenger: Challenger,
    verdict: Verdict,
    *,
    events: tuple[int, int],
    now: datetime,
) -> DriftAlert:
    """The ``alerts.drift`` record of a rollback (``kind`` rollback, drift_alert v2)."""
    since = challenger.ref.promoted_at
    head, *rest = verdict.breaches
    first = _change(head, since=since, now=now, events=events)
    reason = f"{challenger.mode} {challenger.ref.version} rolled back: {verdict.describe()}"
    return DriftAlert(
        alert_id=_alert_id(stream, challenger),
        kind="rollback",
        stream=stream,
        baseline_lag_s=0,
        related=[_change(b, since=since, now=now, events=events) for b in rest][:64],
        model_version=challenger.ref.version,
        reason=reason[:512],
        raised_at=now,
        **{f: getattr(first, f) for f in first.__struct_fields__},
    )


def late_rollback_alert(stream: str, v: LateVerdict, *, now: datetime) -> DriftAlert:
    """The ``alerts.drift`` record of a late rollback: ``v.new`` lost its promotion because
    its realised precision fell below ``v.old``'s on their matured canary cohort."""
    seed = f"{stream}|late|{v.old}|{v.new}"
    return DriftAlert(
        alert_id="rollback-" + hashlib.blake2b(seed.encode(), digest_size=12).hexdigest(),
        kind="rollback",
        stream=stream,
        segment="all",
        signal="precision",
        feature=None,
        detector="late_judge",
        first_evidence_at=now,
        confirmed_at=now,
        effect_sds=round(v.z, 4),
        statistic=round(v.z, 4),
        evidence_events=v.new_flagged,
        baseline_events=v.old_flagged,
        mean=v.new_precision,
        baseline_mean=v.old_precision,
        baseline_lag_s=0,
        related=[],
        model_version=v.new,
        reason=f"champion {v.new} rolled back to {v.old}: {v.reason()}"[:512],
        raised_at=now,
    )


def apply_step(models: ModelStore, stream: str, challenger: Challenger, step: Step) -> bool:
    """A progression move in the store, audited as ``rollout-progression``; whether it applied.

    ``to_canary`` and ``await_approval`` are compare-and-set on the challenger
    (:meth:`ModelStore.update_challenger`); ``to_champion`` promotes it
    (:meth:`ModelStore.promote_challenger`), only while it is still the
    challenger of this version (another scorer may have promoted it first).
    """
    version, by = challenger.ref.version, PROGRESSION_BY
    if step.move == "to_canary":
        entry = models.update_challenger(
            stream, version=version, expect_mode="shadow", action="advanced", by=by,
            reason=step.reason, mode="canary", share=step.share,
        )  # fmt: skip
        return entry is not None
    if step.move == "await_approval":
        entry = models.update_challenger(
            stream, version=version, expect_mode="canary", action="ready", by=by,
            reason=step.reason, ready=True,
        )  # fmt: skip
        return entry is not None
    if step.move == "to_champion":
        current = models.challenger(stream)
        if current is None or current.ref != challenger.ref or current.mode != "canary":
            return False
        models.promote_challenger(stream, by=by, reason=f"auto-promoted: {step.reason}")
        return True
    return False
