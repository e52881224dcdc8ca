"""The monitor's pure core: plans, slots and watermarks, comparisons, alert rules, pickling."""

from __future__ import annotations

import pickle
from dataclasses import replace
from datetime import UTC, datetime

import numpy as np
import pytest

from streamscore.libs.contracts.alerts import DriftAlert
from streamscore.libs.contracts.codec import decode, encode
from streamscore.libs.contracts.scored import ScoredEvent
from streamscore.libs.features.definitions import feature_schema_hash, model_features
from streamscore.libs.monitoring.alerting import AlertDesk
from streamscore.libs.monitoring.comparison import Detection
from streamscore.libs.monitoring.plan import HOUR, PLANS, Signal, StreamPlan, plan_for
from streamscore.libs.monitoring.registry import REGISTRY, calibration, make_detector
from streamscore.libs.monitoring.slots import SlotBook
from streamscore.libs.monitoring.watch import Columns, StreamWatch

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
PLAN = replace(PLANS["transactions"], max_alerts_per_minute=2)


def _columns(
    plan: StreamPlan, hours: float, rate: float, shift_from: float, shift: float, seed: int
) -> Columns:
    """``rate`` events an hour for ``hours`` hours: every signal N(0, 1) plus a daily wave,
    ``shift`` added to the features from hour ``shift_from`` on."""
    rng = np.random.default_rng(seed)
    n = int(hours * rate)
    t = T0 + np.sort(rng.uniform(0, hours * HOUR, n))
    g = len(plan.signals())
    raw = rng.normal(0, 1, (n, g)) + np.sin(2 * np.pi * (t - T0) / 86_400)[:, None]
    first_feature = len(plan.signals()) - len(plan.features)
    raw[(t - T0) >= shift_from * HOUR, first_feature:] += shift
    raw[:, 1 : 1 + len(plan.outcomes)] = 0.0  # decision indicators: never
    return Columns(t, raw, {})


def _feed(watch: StreamWatch, cols: Columns, batch: int = 500) -> list[Detection]:
    found = []
    for i in range(0, len(cols.time_s), batch):
        part = Columns(cols.time_s[i : i + batch], cols.raw[i : i + batch], {})
        found += watch.update_columns(part)
    return found


def test_plans_watch_short_windows_and_count_their_tests() -> None:
    for stream, plan in PLANS.items():
        assert plan_for(stream) is plan
        assert plan.tests == plan.max_segments * len(plan.signals())
        assert {"tx_during_weekend", "tx_during_night", "login_hour"}.isdisjoint(plan.features)
    with pytest.raises(ValueError, match="windows longer"):
        StreamPlan("transactions", features=("customer_nb_tx_30d",))
    with pytest.raises(ValueError, match="not model features"):
        StreamPlan("transactions", features=("nope",))
    assert PLAN.fingerprint() != replace(PLAN, slot_s=2 * HOUR).fingerprint()
    with pytest.raises(KeyError, match="known"):
        plan_for("nope")


def test_more_tests_raise_every_kinds_threshold() -> None:
    few = calibration(run_length_slots=8760, tests=1, warmup=24)
    many = calibration(run_length_slots=8760, tests=100, warmup=24)
    assert make_detector("cusum", many).h > make_detector("cusum", few).h  # type: ignore[attr-defined]
    quick = {"n_sim": 20, "max_arl0": 500}  # the population tests' Monte-Carlo calibration
    for name in REGISTRY:
        make_detector(name, many, quick).update_many(np.random.default_rng(0).normal(size=60))
    with pytest.raises(KeyError, match="known"):
        make_detector("nope", few)


def test_slots_close_by_the_slowest_partition_and_count_late_and_far_ahead() -> None:
    book = SlotBook(signals=1, slot_s=60, lateness_s=0, max_ahead_s=600)
    x = np.ones((3, 1))
    book.expect([0, 1], now=0.0)
    t = np.array([0.0, 90.0, 200.0])
    keep = book.accept(t, np.zeros(3, dtype=np.int64), now=0.0)
    book.add(np.zeros(3, dtype=np.int64), t[keep], x[keep], x[keep])
    assert book.close(now=0.0) == []  # partition 1 has not delivered yet
    keep = book.accept(np.array([130.0]), np.array([1]), now=1.0)
    book.add(np.zeros(1, dtype=np.int64), np.array([130.0]), x[:1], x[:1])
    assert [c.slot for c in book.close(now=1.0)] == [0, 1]  # watermark 130: slots 0 and 1
    assert not book.accept(np.array([30.0]), np.array([1]), now=2.0).any()
    assert book.late == 1
    mixed = np.array([150.0, 1e10])  # one record from 2286: set aside, counted
    assert book.accept(mixed, np.array([1, 1]), now=2.0).tolist() == [True, False]
    assert book.ahead == 1
    assert [c.slot for c in book.close(now=100.0)] == [2]  # partitions idle: the newest time


def test_a_shift_is_detected_once_soon_after_it_starts_and_a_steady_run_stays_quiet() -> None:
    plan = replace(PLAN, settle_s=0)
    shifted = _feed(StreamWatch(plan), _columns(plan, 24 * 6, 60, 24 * 4, 0.8, seed=1))
    steady = _feed(StreamWatch(plan), _columns(plan, 24 * 6, 60, 24 * 99, 0.0, seed=1))
    assert steady == []
    features = {d.signal.id for d in shifted}
    assert features == {s.id for s in plan.signals() if s.kind == "feature"}
    for d in shifted:  # one detection per feature: re-baselined after it
        assert T0 + 90 * HOUR <= d.first_evidence_s <= T0 + 100 * HOUR  # an estimate
        assert T0 + 96 * HOUR < d.confirmed_s <= T0 + 112 * HOUR
        assert 0.5 < d.effect_sds < 1.1
        assert d.evidence_events > 0 and d.mean is not None and d.baseline_mean is not None


def test_the_watch_pickles_and_continues_identically() -> None:
    plan = replace(PLAN, settle_s=0)
    cols = _columns(plan, 24 * 6, 60, 24 * 4, 0.8, seed=2)
    half = len(cols.time_s) // 2
    first = Columns(cols.time_s[:half], cols.raw[:half], {})
    rest = Columns(cols.time_s[half:], cols.raw[half:], {})
    a = StreamWatch(plan)
    _feed(a, first)
    b = pickle.loads(pickle.dumps(a))
    assert _feed(a, rest) == _feed(b, rest)


def _scored(
    plan: StreamPlan, *, change_h: float, new_version: str, canary_share: float, seed: int
) -> list[ScoredEvent]:
    """Six days of 60 scored events an hour, stationary inputs. From ``change_h`` on, a model
    scoring 0.25 higher and blocking 20 % (not 2 %) decides: as a canary on ``canary_share``
    of events, else as the champion under ``new_version`` ("v1": an unannounced change)."""
    rng = np.random.default_rng(seed)
    names, schema = model_features(plan.stream), feature_schema_hash(plan.stream)
    out = []
    for i, t in enumerate(np.sort(rng.uniform(0, 144 * HOUR, 144 * 60)).tolist()):
        new = t >= change_h * HOUR
        canary = new and rng.random() < canary_share
        newer = canary or (new and canary_share == 0)
        score = float(np.clip(rng.normal(0.3 + 0.25 * newer, 0.1), 0, 1))
        out.append(
            ScoredEvent(
                event_id=f"e{i}",
                event_time=datetime.fromtimestamp(T0 + t, tz=UTC),
                stream=plan.stream,
                keys={},
                feature_names_hash=schema,
                values=rng.normal(0, 1, len(names)).tolist(),
                model_version=new_version if newer and not canary else ("v2" if canary else "v1"),
                policy_version="p1",
                score=score,
                decision="block" if rng.random() < (0.2 if newer else 0.02) else "approve",
                policy_path="model",
                degraded=None,
                feature_freshness={},
                decided_at=datetime.fromtimestamp(T0 + t, tz=UTC),
                model_role="canary" if canary else "champion",
            )
        )
    return out


def _watch(plan: StreamPlan, events: list[ScoredEvent]) -> tuple[StreamWatch, list[Detection]]:
    watch, found = StreamWatch(plan), []
    for i in range(0, len(events), 500):
        found += watch.update(events[i : i + 500])
    return watch, found


def test_canary_outputs_and_a_new_champion_are_not_drift_but_an_unannounced_change_is() -> None:
    plan = replace(PLAN, settle_s=0)
    outputs = {"score", "decision_rate"}
    # The same shifted outputs, unannounced (same version, champion role): detected.
    _, silent = _watch(plan, _scored(plan, change_h=72, new_version="v1", canary_share=0, seed=3))
    assert {d.signal.kind for d in silent} == outputs
    # As a canary on half the events: its outputs are not watched (the judge compares them).
    w, canary = _watch(plan, _scored(plan, change_h=72, new_version="v1", canary_share=0.5, seed=3))
    assert not [d for d in canary if d.signal.kind in outputs]
    assert w.stats.canary > 2000 and w.model_version == "v1" and w.stats.restarts == 0
    # Promoted to champion under its own version: the output tests restart from the next
    # slot with the new model's own baseline, and are testing again before the end.
    w, promoted = _watch(plan, _scored(plan, change_h=72, new_version="v2", canary_share=0, seed=3))
    assert not [d for d in promoted if d.signal.kind in outputs]
    assert (w.stats.restarts, w.model_version, w.decider) == (1, "v2", ("v2", "p1"))
    score = w.comparisons[0].tests[0]
    assert score.usable_from == 73 + int(T0 // HOUR) and score.detector is not None
    # The restart survives a snapshot taken before the change (no such attributes then).
    old = StreamWatch(plan)
    for name in ("decider", "restart_from"):
        old.__dict__.pop(name, None)
    assert pickle.loads(pickle.dumps(old)).decider is None


def _detection(
    signal: Signal, confirmed_h: float, effect: float = 0.5, segment: str = "all"
) -> Detection:
    at = T0 + confirmed_h * HOUR
    return Detection(
        segment, signal, "cusum", 0, 0, at - 6 * HOUR, at, 2.0, effect, 100, 90, 1.5, 1.0
    )


def test_one_incident_one_alert_then_cooldown_rate_cap_and_retraining() -> None:
    desk = AlertDesk(PLAN)
    now = datetime(2026, 11, 23, tzinfo=UTC)
    amount, avg = (
        Signal("feature", "tx_amount", "symlog"),
        Signal("feature", "customer_avg_amount_1d"),
    )
    desk.offer([_detection(amount, 10), _detection(avg, 11, 0.9)])
    assert desk.due(T0 + 12 * HOUR, model_version="m1", now=now) == []  # still gathering
    alerts = desk.due(T0 + 13 * HOUR, model_version="m1", now=now)
    assert [a.kind for a in alerts] == ["drift", "retrain_trigger"]  # two model inputs moved
    drift = alerts[0]
    assert (drift.feature, len(drift.related), drift.related[0].feature) == (
        "tx_amount",
        1,
        "customer_avg_amount_1d",
    )
    assert decode(DriftAlert, encode(drift), max_bytes=1 << 20) == drift
    assert AlertDesk.marks(drift) == {
        "all|feature:tx_amount": T0 + 10 * HOUR,
        "all|feature:customer_avg_amount_1d": T0 + 11 * HOUR,
    }
    # The same signal again within its cooldown: counted, not alerted.
    desk.offer([_detection(amount, 30)])
    assert desk.due(T0 + 40 * HOUR, model_version="m1", now=now) == []
    assert desk.suppressed["cooldown"] == 1
    # A storm: the cap lets two alerts a minute through (retraining is on cooldown).
    for i, h in enumerate((60, 70, 80)):
        desk.offer([_detection(Signal("decision_rate", "block"), h, segment=f"s{i}")])
        desk.due(T0 + (h + 4) * HOUR, model_version="m1", now=now)
    assert desk.suppressed["rate_cap"] == 2  # the first drift alert used one of this minute's two


def test_no_model_no_retraining_and_alert_ids_are_stable() -> None:
    score = Signal("score")
    a, b = AlertDesk(PLAN), AlertDesk(PLAN)
    now = datetime(2026, 11, 23, tzinfo=UTC)
    for desk in (a, b):
        desk.offer([_detection(score, 5)])
    with_model = a.due(T0 + 9 * HOUR, model_version="m1", now=now)
    without = b.due(T0 + 9 * HOUR, model_version="none", now=now)
    assert [x.kind for x in with_model] == ["drift", "retrain_trigger"]
    assert [x.kind for x in without] == ["drift"]
    assert with_model[0].alert_id == without[0].alert_id
    b.remember({"all|score": T0 + 20 * HOUR})
    b.offer([_detection(score, 21)])
    assert b.incident == [] and b.suppressed["cooldown"] == 1
