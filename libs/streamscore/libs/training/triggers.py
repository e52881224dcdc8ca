"""When to retrain a stream's model: schedule, the monitor's trigger, new labels; never a storm.

Pure logic in stream time (the newest event time seen, in microseconds), so a
replay or an accelerated clock decides exactly as live traffic would.
:class:`RetrainTriggers` is fed what the retrainer reads and says when to train:

- **schedule**: ``schedule_hours`` of stream time since the last training (or
  since the first record seen, before any training);
- **alert**: a ``retrain_trigger`` alert of the monitor for this stream
  (``alerts.drift``; other kinds and streams are ignored). Drift is confirmed
  within hours; the labels that describe it mature days or months later. With
  ``alert_matured_hours`` the alert waits (held ``maturing``) until the
  maturity frontier — the newest event time of a matured negative example:
  every event up to it has its final label — is that far past the drift's
  confirmation, so the training set holds the changed world, not only the old
  one;
- **examples**: ``min_new_examples`` newly matured labelled examples
  (primary examples, revision 0: one per scored event) since the last training.

Whatever the causes, two trainings (attempts, failed ones included) are at
least ``min_interval_hours`` of stream time apart: a cause that comes within
the interval is *held* (kept, not dropped) and fires once the interval has
passed. Counts and alerts that arrive while a training runs count for the next.

>>> h = 3_600_000_000  # one hour in microseconds
>>> t = RetrainTriggers(TriggerPolicy(schedule_hours=None, min_new_examples=None,
...                                   min_interval_hours=24))
>>> t.observe_alert("a1", kind="retrain_trigger", stream="transactions",
...                 stream_name="transactions", at_us=10 * h)
True
>>> d = t.decide()
>>> d.retrain, d.causes
(True, ('alert',))
>>> t.started(d)
>>> t.finished(ok=True)
>>> _ = t.observe_alert("a2", kind="retrain_trigger", stream="transactions",
...                     stream_name="transactions", at_us=11 * h)
>>> d = t.decide()
>>> d.retrain, d.held
(False, 'min_interval')
>>> t.observe_time(34 * h)
>>> t.decide().retrain
True
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

HOUR_US = 3_600_000_000


@dataclass(frozen=True)
class TriggerPolicy:
    """What makes a stream retrain (``None`` turns a cause off)."""

    schedule_hours: float | None = 7 * 24.0
    on_alert: bool = True
    min_new_examples: int | None = 50_000
    min_interval_hours: float = 24.0
    #: Matured stream time after a drift's confirmation before its alert fires (0: at once).
    alert_matured_hours: float = 0.0

    def __post_init__(self) -> None:
        if self.schedule_hours is not None and self.schedule_hours <= 0:
            raise ValueError("schedule_hours must be > 0 (or None)")
        if self.min_new_examples is not None and self.min_new_examples < 1:
            raise ValueError("min_new_examples must be >= 1 (or None)")
        if self.min_interval_hours < 0:
            raise ValueError("min_interval_hours must be >= 0")
        if self.alert_matured_hours < 0:
            raise ValueError("alert_matured_hours must be >= 0")


class TriggerState(msgspec.Struct, kw_only=True):
    """Everything the triggers remember (saved by the retrainer between batches)."""

    #: Newest stream time seen (us); ``None`` before any record.
    clock_us: int | None = None
    #: Stream time of the first record seen: the schedule's anchor before any training.
    first_seen_us: int | None = None
    #: Stream time at the start of the last successful training.
    last_trained_us: int | None = None
    #: Stream time at the start of the last attempt (successful or not).
    last_attempt_us: int | None = None
    #: Primary labelled examples seen since the last successful training started.
    new_examples: int = 0
    #: ``retrain_trigger`` alerts not yet answered by a training: id -> reason.
    alerts: dict[str, str] = msgspec.field(default_factory=dict)
    #: When their drifts were confirmed (stream time, us; absent in a state saved before
    #: this field: fire at once).
    alert_since: dict[str, int] = msgspec.field(default_factory=dict)
    #: The maturity frontier: newest event time of a matured negative example (us).
    frontier_us: int | None = None
    #: The training under way: the counts it answers (subtracted when it succeeds).
    running: bool = False
    running_examples: int = 0
    running_alerts: list[str] = msgspec.field(default_factory=list)
    trainings: int = 0
    failures: int = 0


@dataclass(frozen=True)
class Decision:
    """Whether to train now, for which causes, or why not (``held``)."""

    retrain: bool
    causes: tuple[str, ...]
    reason: str
    held: str | None = None


class RetrainTriggers:
    """The trigger rules of the module docstring over a :class:`TriggerState`."""

    def __init__(self, policy: TriggerPolicy, state: TriggerState | None = None) -> None:
        self.policy = policy
        self.state = state if state is not None else TriggerState()

    # Observations --------------------------------------------------------------------------

    def observe_time(self, at_us: int) -> None:
        """Stream time moved to ``at_us`` (the clock never goes back)."""
        s = self.state
        if s.first_seen_us is None:
            s.first_seen_us = at_us
        s.clock_us = at_us if s.clock_us is None else max(s.clock_us, at_us)

    def observe_examples(self, n: int, at_us: int) -> None:
        """``n`` new primary labelled examples, the newest at stream time ``at_us``."""
        self.observe_time(at_us)
        self.state.new_examples += n

    def observe_frontier(self, matured_us: int) -> None:
        """A matured negative example of an event at ``matured_us``: every event up to it
        has matured."""
        s = self.state
        s.frontier_us = matured_us if s.frontier_us is None else max(s.frontier_us, matured_us)

    def observe_alert(
        self,
        alert_id: str,
        *,
        kind: str,
        stream: str,
        stream_name: str,
        at_us: int,
    ) -> bool:
        """A monitor alert confirmed at stream time ``at_us``; True when it is a retraining
        trigger for ``stream_name`` (its labels' wait counts from ``at_us``)."""
        self.observe_time(at_us)
        if kind != "retrain_trigger" or stream != stream_name:
            return False
        self.state.alerts.setdefault(alert_id, f"retrain_trigger alert {alert_id}")
        self.state.alert_since.setdefault(alert_id, at_us)
        return True

    def ready_alerts(self) -> list[str]:
        """The pending alerts whose drift has matured ``alert_matured_hours`` (module doc)."""
        s, wait = self.state, self.policy.alert_matured_hours * HOUR_US
        if wait <= 0:
            return sorted(s.alerts)
        frontier = s.frontier_us
        return sorted(
            a
            for a in s.alerts
            if a not in s.alert_since
            or (frontier is not None and frontier >= s.alert_since[a] + wait)
        )

    # Decision ------------------------------------------------------------------------------

    def _causes(self) -> list[str]:
        s, p = self.state, self.policy
        causes = []
        if p.on_alert and self.ready_alerts():
            causes.append("alert")
        if p.min_new_examples is not None and s.new_examples >= p.min_new_examples:
            causes.append("examples")
        anchor = s.last_trained_us if s.last_trained_us is not None else s.first_seen_us
        if (
            p.schedule_hours is not None
            and anchor is not None
            and s.clock_us is not None
            and s.clock_us - anchor >= p.schedule_hours * HOUR_US
        ):
            causes.append("schedule")
        return causes

    def decide(self) -> Decision:
        """Train now? (Never while a training runs, nor within the minimum interval.)"""
        s = self.state
        causes = tuple(self._causes())
        if not causes:
            if self.policy.on_alert and s.alerts:
                why = "monitor " + ", ".join(sorted(s.alerts)) + ": labels of the drift maturing"
                return Decision(False, ("alert",), why, held="maturing")
            return Decision(False, (), "no trigger")
        reason = self._reason(causes)
        if s.running:
            return Decision(False, causes, reason, held="running")
        if s.last_attempt_us is not None and s.clock_us is not None:
            since = s.clock_us - s.last_attempt_us
            if since < self.policy.min_interval_hours * HOUR_US:
                return Decision(False, causes, reason, held="min_interval")
        return Decision(True, causes, reason)

    def _reason(self, causes: tuple[str, ...]) -> str:
        s, parts = self.state, []
        for c in causes:
            if c == "alert":
                parts.append("monitor " + ", ".join(self.ready_alerts()))
            elif c == "examples":
                parts.append(f"{s.new_examples} new labelled examples")
            else:
                parts.append(f"schedule ({self.policy.schedule_hours:g} h of stream time)")
        return "; ".join(parts)

    # Training lifecycle --------------------------------------------------------------------

    def started(self, decision: Decision) -> None:
        """A training for ``decision`` starts now (at the current stream time)."""
        s = self.state
        if not decision.retrain:
            raise ValueError("started() for a decision that does not retrain")
        s.running = True
        s.last_attempt_us = s.clock_us
        s.running_examples = s.new_examples
        s.running_alerts = self.ready_alerts()

    def finished(self, *, ok: bool) -> None:
        """The training ended: on success its causes are answered; on failure they stay
        (and fire again after the minimum interval)."""
        s = self.state
        if not s.running:
            raise ValueError("finished() without a running training")
        if ok:
            s.last_trained_us = s.last_attempt_us
            s.new_examples = max(0, s.new_examples - s.running_examples)
            for a in s.running_alerts:
                s.alerts.pop(a, None)
                s.alert_since.pop(a, None)
            s.trainings += 1
        else:
            s.failures += 1
        s.running, s.running_examples, s.running_alerts = False, 0, []

    def recover(self) -> None:
        """After a restart: a training that was running when the process died never
        finished; its causes stay and may fire at once (the attempt is forgotten)."""
        s = self.state
        if s.running:
            s.running, s.running_examples, s.running_alerts = False, 0, []
            s.last_attempt_us = s.last_trained_us


def encode_state(state: TriggerState) -> bytes:
    """JSON of the state (what the retrainer saves)."""
    return msgspec.json.encode(state)


def decode_state(raw: bytes) -> TriggerState:
    """The state saved by :func:`encode_state`."""
    return msgspec.json.decode(raw, type=TriggerState)
