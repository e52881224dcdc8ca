"""Retraining triggers: schedule, monitor alert, new labelled examples, minimum interval."""

from __future__ import annotations

import pytest

from streamscore.libs.training.triggers import (
    HOUR_US,
    Decision,
    RetrainTriggers,
    TriggerPolicy,
    TriggerState,
    decode_state,
    encode_state,
)

S = "transactions"


def _alert(
    t: RetrainTriggers,
    alert_id: str,
    hour: float,
    *,
    kind: str = "retrain_trigger",
    stream: str = S,
) -> bool:
    return t.observe_alert(
        alert_id, kind=kind, stream=stream, stream_name=S, at_us=int(hour * HOUR_US)
    )


def _train(t: RetrainTriggers, *, ok: bool = True) -> Decision:
    d = t.decide()
    assert d.retrain, d
    t.started(d)
    t.finished(ok=ok)
    return d


ONLY_ALERTS = TriggerPolicy(schedule_hours=None, min_new_examples=None, min_interval_hours=24)


def test_nothing_triggers_without_a_cause() -> None:
    t = RetrainTriggers(TriggerPolicy())
    assert t.decide() == Decision(False, (), "no trigger")
    t.observe_examples(10, 5 * HOUR_US)
    assert not t.decide().retrain


def test_alert_triggers_only_retrain_triggers_of_the_stream() -> None:
    t = RetrainTriggers(ONLY_ALERTS)
    assert not _alert(t, "d1", 1, kind="drift")
    assert not _alert(t, "o1", 1, stream="logins")
    assert not t.decide().retrain
    assert _alert(t, "a1", 2)
    d = t.decide()
    assert d.retrain and d.causes == ("alert",) and "a1" in d.reason


def test_alert_is_idempotent_by_id() -> None:
    t = RetrainTriggers(ONLY_ALERTS)
    _alert(t, "a1", 1)
    _alert(t, "a1", 1)  # re-published by a restarted monitor
    assert list(t.state.alerts) == ["a1"]


def test_alerts_off() -> None:
    t = RetrainTriggers(TriggerPolicy(schedule_hours=None, on_alert=False, min_new_examples=None))
    _alert(t, "a1", 1)
    assert not t.decide().retrain


def test_examples_threshold_counts_since_the_last_training() -> None:
    t = RetrainTriggers(
        TriggerPolicy(schedule_hours=None, min_new_examples=100, min_interval_hours=0)
    )
    t.observe_examples(60, HOUR_US)
    assert not t.decide().retrain
    t.observe_examples(40, 2 * HOUR_US)
    d = t.decide()
    assert d.causes == ("examples",) and "100 new labelled examples" in d.reason
    t.started(d)
    t.observe_examples(30, 3 * HOUR_US)  # arrives while training: counts for the next one
    assert t.decide().held == "running"
    t.finished(ok=True)
    assert t.state.new_examples == 30 and not t.decide().retrain


def test_schedule_in_stream_time_from_first_record_then_from_last_training() -> None:
    t = RetrainTriggers(
        TriggerPolicy(schedule_hours=24, min_new_examples=None, min_interval_hours=1)
    )
    t.observe_time(100 * HOUR_US)
    t.observe_time(123 * HOUR_US)
    assert not t.decide().retrain
    t.observe_time(124 * HOUR_US)
    assert _train(t).causes == ("schedule",)
    assert t.state.last_trained_us == 124 * HOUR_US
    t.observe_time(147 * HOUR_US)
    assert not t.decide().retrain
    t.observe_time(148 * HOUR_US)
    assert t.decide().retrain


def test_clock_never_goes_back() -> None:
    t = RetrainTriggers(TriggerPolicy())
    t.observe_time(10 * HOUR_US)
    t.observe_time(5 * HOUR_US)
    assert t.state.clock_us == 10 * HOUR_US and t.state.first_seen_us == 10 * HOUR_US


def test_minimum_interval_holds_then_fires_the_held_cause() -> None:
    t = RetrainTriggers(ONLY_ALERTS)
    _alert(t, "a1", 10)
    _train(t)
    assert t.state.alerts == {} and t.state.trainings == 1
    # A storm of alerts within the interval: held, not dropped, not trained.
    for i in range(20):
        _alert(t, f"b{i}", 10 + i)
    d = t.decide()
    assert not d.retrain and d.held == "min_interval" and d.causes == ("alert",)
    t.observe_time(34 * HOUR_US - 1)
    assert not t.decide().retrain
    t.observe_time(34 * HOUR_US)
    d = _train(t)
    assert "b0" in d.reason and "b19" in d.reason
    assert t.state.alerts == {} and t.state.trainings == 2


def test_failed_training_keeps_its_causes_and_waits_the_interval() -> None:
    t = RetrainTriggers(ONLY_ALERTS)
    _alert(t, "a1", 10)
    _train(t, ok=False)
    assert t.state.alerts == {"a1": "retrain_trigger alert a1"} and t.state.failures == 1
    assert t.state.last_trained_us is None
    assert t.decide().held == "min_interval"  # no retry storm either
    t.observe_time(34 * HOUR_US)
    assert t.decide().retrain


def test_recover_forgets_an_interrupted_training() -> None:
    t = RetrainTriggers(ONLY_ALERTS)
    _alert(t, "a1", 10)
    t.started(t.decide())
    state = decode_state(encode_state(t.state))  # what a crashed process left in Redis
    again = RetrainTriggers(ONLY_ALERTS, state)
    assert again.decide().held == "running"
    again.recover()
    d = again.decide()
    assert d.retrain and d.causes == ("alert",)


def test_state_round_trips_and_lifecycle_is_checked() -> None:
    t = RetrainTriggers(TriggerPolicy())
    t.observe_examples(3, HOUR_US)
    _alert(t, "a1", 2)
    assert decode_state(encode_state(t.state)) == t.state
    with pytest.raises(ValueError):
        t.finished(ok=True)
    with pytest.raises(ValueError):
        t.started(Decision(False, (), "no"))
    assert TriggerState().clock_us is None


@pytest.mark.parametrize(
    "kwargs",
    [{"schedule_hours": 0}, {"min_new_examples": 0}, {"min_interval_hours": -1}],
)
def test_policy_refuses_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        TriggerPolicy(**kwargs)  # type: ignore[arg-type]


def test_an_alert_waits_until_the_labels_of_its_drift_have_matured() -> None:
    policy = TriggerPolicy(schedule_hours=None, min_new_examples=None, alert_matured_hours=48)
    t = RetrainTriggers(policy)
    h = HOUR_US
    assert _alert(t, "a1", 20)  # confirmed at 20 h
    d = t.decide()
    assert (d.retrain, d.causes, d.held) == (False, ("alert",), "maturing") and "a1" in d.reason
    t.observe_frontier(67 * h)  # events up to 67 h matured: 47 h after the confirmation
    assert t.decide().held == "maturing"
    t.observe_frontier(60 * h)  # never goes back
    t.observe_frontier(68 * h)
    d = _train(t)
    assert d.causes == ("alert",) and "a1" in d.reason
    assert t.state.alerts == {} and t.state.alert_since == {}
    # An alert from a state saved before its confirmation time was kept fires at once.
    t.state.alerts["a2"] = "retrain_trigger alert a2"
    assert t.ready_alerts() == ["a2"]
    assert decode_state(encode_state(t.state)) == t.state
    with pytest.raises(ValueError, match="alert_matured_hours"):
        TriggerPolicy(alert_matured_hours=-1)
