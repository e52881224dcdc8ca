"""Features of one event from the entity states it touches: the one computation online and offline.

The stream processors call :func:`apply_event` with states loaded from Redis;
the offline path (:mod:`.offline`) calls it with states kept in memory, on the
same events in the same order, so both produce the same vectors by
construction. Per group, in order (``t`` is the event time):

1. *Before* the event is added: ``since_last`` (seconds since the entity's
   previous event, missing if none within the window), ``zscore`` (the value
   against the window's other values; missing with fewer than 2 values or no
   spread, :func:`zscore`) and the derived ``gap_s`` of clickstream sessions.
2. The event is added to every input (:mod:`.plan`). An event more than the
   grace period behind the entity's newest event is **late**: it is not merged
   (counted in :attr:`GroupResult.late`), and its features are read at the
   oldest time the state still answers exactly (``newest - grace``).
3. *After*: every other aggregate over ``(t - delay - W, t - delay]``, so the
   customer windows include the current transaction (handbook). Counts, sums
   and distinct counts of an empty window are 0 (a measured zero); means,
   deviations and extrema of an empty window are missing, except where the
   declaration says ``empty="zero"`` (the handbook's terminal risk).

``label_rate`` is positives known by ``t`` (:mod:`.label_ledger`) over the
events of the delayed window; labels are applied with :func:`apply_label`.

Missing stays missing (``None``), never 0. A non-finite input value raises
:class:`FeatureInputError` (the processor sends the event to the DLQ).

>>> from datetime import UTC, datetime
>>> from streamscore.libs.contracts.events import Transaction
>>> states = new_states("transactions")
>>> t = datetime(2026, 3, 7, 5, 0, tzinfo=UTC)  # a Saturday, 05:00
>>> tx = Transaction(event_id="e1", event_time=t, customer_id="C1", terminal_id="T1", amount=20.0)
>>> c, term = states[("customer_tx", "C1")], states[("terminal_risk", "T1")]
>>> r = apply_event("transactions", tx, c, term)
>>> v = r.values
>>> [v[k] for k in ("tx_during_weekend", "tx_during_night", "customer_nb_tx_1d")]
[1.0, 1.0, 1.0]
>>> v["customer_secs_since_last_tx"] is None, v["terminal_risk_7d"], r.statuses["customer_tx"]
(True, 0.0, 'NOT_FOUND')
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any

from streamscore.libs.contracts.base import Event
from streamscore.libs.features.definitions import EVENT_FEATURES, groups
from streamscore.libs.features.group_state import GroupState
from streamscore.libs.features.plan import EVENTS, GroupPlan, plan_for, window_of
from streamscore.libs.features.spec import FeatureGroup, WindowedFeature
from streamscore.libs.windows.engine import EntityWindows, Outcome
from streamscore.libs.windows.moments import Moments
from streamscore.libs.windows.timebase import to_us
from streamscore.libs.windows.window import Window

_US = 1_000_000
#: The largest magnitude a numeric input may have (sums of squares of a million
#: such values stay finite, and every aggregate fits the model's float32 input).
MAX_ABS_INPUT = 1e15
#: Below this deviation relative to the values' magnitude, a window has no spread.
MIN_RELATIVE_SPREAD = 1e-12
#: Aggregates that are a measured 0 on an empty window.
_ZERO_WHEN_EMPTY = frozenset({"count", "sum", "distinct"})


class FeatureInputError(ValueError):
    """An event whose input cannot be used (a non-finite value): a DLQ reason."""

    def __init__(self, reason: str, field: str, detail: str) -> None:
        super().__init__(f"{reason}: {field}: {detail}")
        self.reason = reason
        self.field = field
        self.detail = detail


@dataclass
class GroupResult:
    """The features of one group for one event."""

    values: list[float | None]
    #: ``PRESENT`` (the entity has other events in its status window) or ``NOT_FOUND``.
    status: str
    outcome: Outcome
    late: bool


@dataclass
class EventResult:
    """The model input of one event: values by name, and per group the status."""

    values: dict[str, float | None]
    statuses: dict[str, str]
    groups: dict[str, GroupResult] = field(default_factory=dict)

    @property
    def late_groups(self) -> list[str]:
        return [name for name, r in self.groups.items() if r.late]


def entity_id(group: FeatureGroup, message: Any) -> str | None:
    """The entity a message is about in ``group`` (its join key field), or ``None``."""
    value = getattr(message, group.entity.join_key, None)
    return None if value is None else str(value)


def _flag(b: bool) -> float:
    return 1.0 if b else 0.0


def event_features(stream: str, event: Any) -> dict[str, float | None]:
    """The stateless features of an event (``EVENT_FEATURES``); clock fields in UTC."""
    t = event.event_time.astimezone(UTC)
    if stream == "transactions":
        out: dict[str, float | None] = {
            "tx_amount": float(event.amount),
            "tx_during_weekend": _flag(t.weekday() >= 5),
            "tx_during_night": _flag(t.hour <= 6),
        }
    elif stream == "logins":
        out = {"login_success": _flag(event.success), "login_hour": float(t.hour)}
    elif stream == "sensor_readings":
        out = {"reading_value": None if event.value is None else float(event.value)}
    elif stream == "clickstream":
        out = {
            "click_is_purchase": _flag(event.action == "purchase"),
            "click_is_add_to_cart": _flag(event.action == "add_to_cart"),
        }
    else:
        raise KeyError(stream)
    assert list(out) == [f.name for f in EVENT_FEATURES[stream]]
    for name, v in out.items():
        if v is not None and not math.isfinite(v):
            raise FeatureInputError("non_finite_value", name, repr(v))
    return out


def input_value(event: Any, name: str, derived: dict[str, float | None]) -> float | None:
    """The value of input field ``name`` for ``event`` (derived inputs first)."""
    if name in derived:
        return derived[name]
    if name == "failed":
        return _flag(not event.success)
    if name == "missing":
        return _flag(event.value is None)
    if name == "is_purchase":
        return _flag(event.action == "purchase")
    if name == "is_add_to_cart":
        return _flag(event.action == "add_to_cart")
    raw = getattr(event, name)
    if raw is None:
        return None
    x = float(raw)
    if not math.isfinite(x):
        raise FeatureInputError("non_finite_value", name, repr(raw))
    return x


def _read(m: Moments, f: WindowedFeature) -> float | None:
    empty = "zero" if f.agg in _ZERO_WHEN_EMPTY or f.empty == "zero" else "missing"
    stat = "std" if f.agg == "std" else f.agg
    return m.get(stat, empty)  # type: ignore[arg-type]


def since_previous(ev: EntityWindows, t: int) -> int | None:
    """Microseconds from the latest accepted event at or before ``t`` to ``t`` (``None``: none).

    :class:`~streamscore.libs.windows.last.LastSeen` answers exactly unless ``t`` is
    older than all it keeps (an event out of order behind ``k`` newer ones); then
    the retained raw events are searched, newest tile first.
    """
    last = ev.last
    if len(last.times) < last.k or t >= last.times[0]:
        return ev.since_last(t)
    tile = ev.config.tile_us
    for k in sorted((k for k in ev.live if k <= t // tile), reverse=True):
        evs = ev.events.get(k)
        if evs is not None and (latest := evs.latest_at_or_before(t)) is not None:
            return t - latest
    return None


def _pre_reads(
    plan: GroupPlan, state: GroupState, event: Any, read_t: int, derived: dict[str, float | None]
) -> dict[str, float | None]:
    """Step 1: the features read before the event is added (and the derived ``gap_s``)."""
    since = since_previous(state.events, read_t)
    if "gap_s" in plan.inputs:
        derived["gap_s"] = None if since is None else since / _US
    pre: dict[str, float | None] = {}
    for f in plan.group.features:
        if f.agg == "since_last":
            # The previous event counts if it lies in the window (t - W, t].
            pre[f.name] = None if since is None or since >= f.window_s * _US else since / _US
        elif f.agg == "zscore":
            assert f.field is not None
            x = input_value(event, f.field, derived)
            m = state.engines[f.field].read(read_t, window_of(f))
            pre[f.name] = zscore(x, m.mean, m.std)
    return pre


def zscore(x: float | None, mean: float | None, sd: float | None) -> float | None:
    """``(x - mean) / sd``; missing without values or spread.

    A deviation at most :data:`MIN_RELATIVE_SPREAD` of the values' magnitude is
    roundoff, not spread: the z-score is missing then, so it never explodes
    (and never overflows the model's float32 input).

    >>> zscore(12.0, 10.0, 2.0), zscore(12.0, 10.0, 0.0), zscore(1e9, 5e-324, 5e-324)
    (1.0, None, None)
    """
    if x is None or mean is None or sd is None:
        return None
    if sd <= MIN_RELATIVE_SPREAD * max(abs(mean), abs(x)):
        return None
    return (x - mean) / sd


def _add(
    plan: GroupPlan, state: GroupState, event: Any, t: int, derived: dict[str, float | None]
) -> None:
    """Step 2, after ``ev`` accepted the event: every other input and the EWMAs."""
    for name, inp in plan.inputs.items():
        if name == EVENTS:
            continue
        if inp.key_field is not None:
            key = getattr(event, inp.key_field, None)
            if key is not None:
                state.engines[name].add(t, 0.0, key=str(key))
            continue
        assert inp.value_field is not None
        x = input_value(event, inp.value_field, derived)
        if x is not None:
            state.engines[name].add(t, x)
    for fname, (fld, _) in plan.ewmas.items():
        x = input_value(event, fld, derived)
        if x is not None:
            state.add_ewma(fname, t, x)


class _Reads:
    """Window reads of one event, each (input, window) read once: the count of a
    window serves its count feature, its label rate and the group's status."""

    __slots__ = ("memo", "read_t", "state")

    def __init__(self, state: GroupState, read_t: int) -> None:
        self.state, self.read_t = state, read_t
        self.memo: dict[tuple[str, Window], Moments] = {}

    def __call__(self, name: str, w: Window) -> Moments:
        m = self.memo.get((name, w))
        if m is None:
            m = self.memo[(name, w)] = self.state.engines[name].read(self.read_t, w)
        return m


def _post_read(plan: GroupPlan, reads: _Reads, f: WindowedFeature) -> float | None:
    """Step 3: one aggregate read after the event was added."""
    state, read_t, w = reads.state, reads.read_t, window_of(f)
    if f.agg == "ewma":
        return state.ewmas[f.name].mean
    if f.agg == "distinct":
        return float(state.engines[f"d:{f.field}"].read_distinct(read_t, w).count())
    if f.agg == "label_rate":
        n = reads(EVENTS, w).count
        assert state.ledger is not None
        positives = state.ledger.positives(read_t, w)
        return positives / n if n else (0.0 if f.empty == "zero" else None)
    name = plan.input_of(f)
    assert name is not None
    return _read(reads(name, w), f)


def apply_group(plan: GroupPlan, state: GroupState, event: Any, t: int) -> GroupResult:
    """Add ``event`` (at ``t`` µs) to one entity's state and read the group's features."""
    ev = state.events
    wm = ev.watermark
    late = wm is not None and t < wm - plan.grace_us
    read_t = wm - plan.grace_us if late and wm is not None else t
    derived: dict[str, float | None] = {}
    pre = _pre_reads(plan, state, event, read_t, derived)
    outcome = Outcome.LATE_DROPPED if late else ev.add(t, 0.0, event_id=event.event_id)
    if outcome is Outcome.ACCEPTED:
        _add(plan, state, event, t, derived)
        if state.ledger is not None and ev.watermark is not None:
            state.ledger.evict(ev.watermark)
    reads = _Reads(state, read_t)
    values = [
        pre[f.name] if f.name in pre else _post_read(plan, reads, f) for f in plan.group.features
    ]
    others = reads(EVENTS, plan.status_window).count
    if outcome is not Outcome.LATE_DROPPED and plan.status_window.delay_us == 0:
        others -= 1  # this event is in the window: only the others make the entity known
    return GroupResult(values, "PRESENT" if others > 0 else "NOT_FOUND", outcome, late)


def check_finite(event: Event) -> None:
    """Refuse an event with a non-finite or out-of-range number before any state changes.

    Beyond :data:`MAX_ABS_INPUT` a value would overflow the windows' sums of
    squares or the model's float32 input (a sensor reading of 1e300 is finite
    in JSON, not in a variance).

    >>> from datetime import UTC, datetime
    >>> from streamscore.libs.contracts.events import SensorReading
    >>> reading = SensorReading(event_id="e", event_time=datetime(2026, 1, 1, tzinfo=UTC),
    ...     machine_id="m", sensor_id="s", machine_type="pump", sensor_type="temperature",
    ...     value=1e300)
    >>> try:
    ...     check_finite(reading)
    ... except FeatureInputError as err:
    ...     print(err.reason, err.field)
    out_of_range value
    """
    for name in event.__struct_fields__:
        v = getattr(event, name)
        if isinstance(v, float):
            if not math.isfinite(v):
                raise FeatureInputError("non_finite_value", name, repr(v))
            if abs(v) > MAX_ABS_INPUT:
                raise FeatureInputError("out_of_range", name, repr(v))


def apply_event(stream: str, event: Event, *states: GroupState) -> EventResult:
    """Features of ``event``: its event features, then each group's (``states`` in
    ``groups(stream)`` order, one per group, the states of the event's entities)."""
    gs = groups(stream)
    if len(states) != len(gs):
        raise ValueError(f"{stream} needs {len(gs)} states, got {len(states)}")
    check_finite(event)
    t = to_us(event.event_time)
    values = event_features(stream, event)
    result = EventResult(values, {})
    for g, state in zip(gs, states, strict=True):
        r = apply_group(plan_for(g), state, event, t)
        result.groups[g.name] = r
        result.statuses[g.name] = r.status
        values.update(zip(g.feature_names, r.values, strict=True))
    return result


def label_positive(label: Any) -> bool:
    """Whether a label says "positive" (fraud, takeover, failure, conversion)."""
    for name in ("fraud", "confirmed", "converted"):
        if hasattr(label, name):
            return bool(getattr(label, name))
    return True  # a failure record is a failure


def label_target_time(label: Any) -> int | None:
    t = getattr(label, "target_event_time", None) or getattr(label, "failure_time", None)
    return None if t is None else to_us(t)


def label_groups(stream: str) -> list[FeatureGroup]:
    """The groups of ``stream`` with label-derived features."""
    return [g for g in groups(stream) if plan_for(g).ledger_horizon_us is not None]


def apply_label(plan: GroupPlan, state: GroupState, label: Any) -> str:
    """Record a label in one entity's ledger; returns what happened
    (``applied``, ``duplicate``, ``too_old``, ``unplaced``: no target time)."""
    target_time = label_target_time(label)
    target = getattr(label, "target_event_id", None)
    if target_time is None or target is None or state.ledger is None:
        return "unplaced"
    before = state.ledger.too_old
    added = state.ledger.add(
        label.event_id,
        target=target,
        target_time=target_time,
        arrival=to_us(label.event_time),
        positive=label_positive(label),
        now=state.events.watermark,
    )
    if added:
        return "applied"
    return "too_old" if state.ledger.too_old > before else "duplicate"


def new_states(stream: str) -> defaultdict[tuple[str, str], GroupState]:
    """In-memory states keyed by ``(group name, entity id)``, created on first use."""

    class _States(defaultdict[tuple[str, str], GroupState]):
        def __missing__(self, key: tuple[str, str]) -> GroupState:
            s = self[key] = GroupState(plan_for(_group(stream, key[0])))
            return s

    return _States()


def _group(stream: str, name: str) -> FeatureGroup:
    for g in groups(stream):
        if g.name == name:
            return g
    raise KeyError(name)
