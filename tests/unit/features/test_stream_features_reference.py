"""Login, sensor and click features against a brute-force reference, event by event.

For each of the three streams a few simulated days of the ``small`` scenario
(that stream only, a fixed subset of its entities, every event of a kept
entity) go through :func:`streamscore.libs.features.offline.compute`, and
*every* model feature of *every* event (plus each group's status and late
flag) must equal a reference written here from the declarations'
definitions, independently of the window engine:

* each entity's accepted events are kept in a plain list; a window
  ``(t - W, t]`` is the explicit filter ``t - W < t_i <= t`` over that list;
* ``count``/``sum``/``distinct`` of an empty window are 0, ``mean``/``std``/
  ``min``/``max`` are missing (``None``); ``std`` is the sample deviation
  (``ddof=1``, missing with fewer than 2 values);
* ``since_last`` and the clickstream's derived ``gap_s`` are read *before* the
  event is added: seconds since the latest accepted event with ``t_i <= t``
  (ties give 0), ``since_last`` missing when that event is not in ``(t - W, t]``
  (``gap_s`` has no window); ``zscore`` is the value against the window's
  *other* values, missing with fewer than 2 values or no spread;
* ``ewma`` is ``S = Σ x_i·2^{-(T-t_i)/h} / Σ 2^{-(T-t_i)/h}`` over every
  accepted value so far (``h`` = the window, ``T`` = the newest time; the
  ratio does not depend on ``T``).

Order rule mirrored from the code: events are applied in *arrival order*,
which is the order of the records (and of the list given to ``compute``). An
event more than the grace period (10 minutes) behind the entity's newest
accepted event is not merged and its features are read at ``newest - grace``;
an event within grace is merged and read at its own time (so later events that
arrived before it are outside its windows, but inside the EWMA, which is "as
of the newest event"). A repeated event id gets the first vector again.
"Previous event" is the latest accepted event at or before the event's time,
however many newer events arrived first (``reference(..., last_k=None)``).

The simulated streams are in event-time order (with ties: a machine's three
sensors share a timestamp); a second run per stream re-delivers them with some
events delayed (within and beyond grace) and some duplicated, to cover the
out-of-order rules too. Hand-written cases follow for one edge of each stream.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from streamscore.libs.contracts.base import Event
from streamscore.libs.contracts.codec import decode
from streamscore.libs.contracts.events import Click, ClickAction, Login, SensorReading
from streamscore.libs.features.compute import EventResult, zscore
from streamscore.libs.features.definitions import groups, model_features
from streamscore.libs.features.offline import compute
from streamscore.libs.simulator.scenario import Scenario, get
from streamscore.libs.topics import STREAMS

MINUTE = 60
HOUR = 3_600
DAY = 86_400
US = 1_000_000
#: How far behind an entity's newest event an event may be and still count (plan.GRACE_S).
GRACE_S = 10 * MINUTE
#: Distinct counts are an exact set up to this many keys, a HyperLogLog estimate beyond.
DISTINCT_EXACT_UP_TO = 64
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def us(t: datetime) -> int:
    """Microseconds since the epoch (exact integer arithmetic)."""
    return (t - EPOCH) // timedelta(microseconds=1)


# -- the reference -----------------------------------------------------------


@dataclass(frozen=True)
class Acc:
    """An accepted event of one entity, with its derived ``gap_s`` (seconds, clickstream)
    and, by feature name, the numeric input each feature takes from it."""

    t: int
    event: Any
    gap: float | None
    inputs: dict[str, float | None] = field(default_factory=dict)


Value = Callable[[Acc], float | None]


@dataclass(frozen=True)
class RefFeature:
    name: str
    agg: str
    window_s: int
    value: Value | None = None  # numeric input (sum/mean/std/min/max/ewma/zscore)
    key: str | None = None  # event field whose distinct values are counted


@dataclass(frozen=True)
class RefGroup:
    name: str
    entity_field: str
    #: The longest window: the entity is PRESENT when it has other events in it.
    status_window_s: int
    features: tuple[RefFeature, ...]
    derives_gap: bool = False


def _flag(b: bool) -> float:
    return 1.0 if b else 0.0


def _failed(a: Acc) -> float:
    return _flag(not a.event.success)


def _reading(a: Acc) -> float | None:
    v = a.event.value
    return None if v is None else float(v)


def _missing(a: Acc) -> float:
    return _flag(a.event.value is None)


def _gap(a: Acc) -> float | None:
    return a.gap


def _add_to_cart(a: Acc) -> float:
    return _flag(a.event.action == "add_to_cart")


def _purchase(a: Acc) -> float:
    return _flag(a.event.action == "purchase")


def _login_features(e: Any) -> dict[str, float | None]:
    hour = e.event_time.astimezone(UTC).hour  # "Hour of day (UTC) of the attempt."
    return {"login_success": _flag(e.success), "login_hour": float(hour)}


def _sensor_features(e: Any) -> dict[str, float | None]:
    return {"reading_value": None if e.value is None else float(e.value)}


def _click_features(e: Any) -> dict[str, float | None]:
    return {
        "click_is_purchase": _flag(e.action == "purchase"),
        "click_is_add_to_cart": _flag(e.action == "add_to_cart"),
    }


#: Written from ``definitions.py``'s declarations and ``DERIVED_INPUTS``.
REFERENCE: dict[str, tuple[Callable[[Any], dict[str, float | None]], tuple[RefGroup, ...]]] = {
    "logins": (
        _login_features,
        (
            RefGroup(
                "account_logins",
                "account_id",
                30 * DAY,
                (
                    RefFeature("account_attempts_1h", "count", HOUR),
                    RefFeature("account_failures_1h", "sum", HOUR, _failed),
                    RefFeature("account_distinct_devices_7d", "distinct", 7 * DAY, key="device_id"),
                    RefFeature("account_distinct_countries_7d", "distinct", 7 * DAY, key="country"),
                    RefFeature("account_distinct_ips_1d", "distinct", DAY, key="ip"),
                    RefFeature("account_secs_since_last", "since_last", 30 * DAY),
                ),
            ),
            RefGroup(
                "ip_logins",
                "ip",
                HOUR,
                (
                    RefFeature("ip_attempts_10m", "count", 10 * MINUTE),
                    RefFeature("ip_distinct_accounts_1h", "distinct", HOUR, key="account_id"),
                    RefFeature("ip_failures_1h", "sum", HOUR, _failed),
                ),
            ),
        ),
    ),
    "sensor_readings": (
        _sensor_features,
        (
            RefGroup(
                "sensor_stats",
                "sensor_id",
                DAY,
                (
                    RefFeature("sensor_mean_1h", "mean", HOUR, _reading),
                    RefFeature("sensor_std_1h", "std", HOUR, _reading),
                    RefFeature("sensor_min_1h", "min", HOUR, _reading),
                    RefFeature("sensor_max_1h", "max", HOUR, _reading),
                    RefFeature("sensor_mean_24h", "mean", DAY, _reading),
                    RefFeature("sensor_ewma_6h", "ewma", 6 * HOUR, _reading),
                    RefFeature("sensor_zscore_24h", "zscore", DAY, _reading),
                    RefFeature("sensor_missing_24h", "sum", DAY, _missing),
                ),
            ),
            RefGroup(
                "machine_health",
                "machine_id",
                DAY,
                (
                    RefFeature("machine_readings_1h", "count", HOUR),
                    RefFeature("machine_missing_24h", "sum", DAY, _missing),
                ),
            ),
        ),
    ),
    "clickstream": (
        _click_features,
        (
            RefGroup(
                "session_activity",
                "session_id",
                30 * MINUTE,
                (
                    RefFeature("session_events_30m", "count", 30 * MINUTE),
                    RefFeature("session_mean_gap_30m", "mean", 30 * MINUTE, _gap),
                    RefFeature("session_std_gap_30m", "std", 30 * MINUTE, _gap),
                    RefFeature("session_distinct_pages_30m", "distinct", 30 * MINUTE, key="page"),
                    RefFeature("session_add_to_cart_30m", "sum", 30 * MINUTE, _add_to_cart),
                    RefFeature("session_secs_since_last", "since_last", 30 * MINUTE),
                ),
                derives_gap=True,
            ),
            RefGroup(
                "user_history",
                "user_id",
                30 * DAY,
                (
                    RefFeature("user_sessions_events_7d", "count", 7 * DAY),
                    RefFeature("user_purchases_30d", "sum", 30 * DAY, _purchase),
                ),
            ),
        ),
    ),
}


@dataclass(frozen=True)
class Expected:
    values: dict[str, float | None]
    statuses: dict[str, str]
    late: dict[str, bool]


def _mean(xs: Sequence[float]) -> float | None:
    return math.fsum(xs) / len(xs) if xs else None


def _std(xs: Sequence[float]) -> float | None:
    """Sample standard deviation (ddof=1), two-pass."""
    if len(xs) < 2:
        return None
    m = math.fsum(xs) / len(xs)
    return math.sqrt(math.fsum((x - m) ** 2 for x in xs) / (len(xs) - 1))


def _values(accs: Iterable[Acc], name: str) -> list[float]:
    """The non-missing inputs of feature ``name`` of some events."""
    return [v for a in accs if (v := a.inputs[name]) is not None]


def _in_window(history: list[Acc], read_t: int, window_s: int) -> list[Acc]:
    lo, hi = read_t - window_s * US, read_t
    return [a for a in history if lo < a.t <= hi]


def _post(
    f: RefFeature, history: list[Acc], read_t: int, window: Callable[[int], list[Acc]]
) -> float | None:
    """An aggregate read after the event was added (``history`` includes it if accepted);
    ``window(W)`` is ``_in_window(history, read_t, W)``."""
    if f.agg == "ewma":
        points = [(a.t, v) for a in history if (v := a.inputs[f.name]) is not None]
        if not points:
            return None
        newest = max(t for t, _ in points)
        weights = [2.0 ** (-(newest - t) / (f.window_s * US)) for t, _ in points]
        return math.fsum(w * x for w, (_, x) in zip(weights, points, strict=True)) / math.fsum(
            weights
        )
    events = window(f.window_s)
    if f.agg == "count":
        return float(len(events))
    if f.agg == "distinct":
        assert f.key is not None
        return float(len({str(k) for a in events if (k := getattr(a.event, f.key)) is not None}))
    xs = _values(events, f.name)
    if f.agg == "sum":
        return math.fsum(xs)
    if f.agg == "mean":
        return _mean(xs)
    if f.agg == "std":
        return _std(xs)
    if f.agg == "min":
        return min(xs) if xs else None
    if f.agg == "max":
        return max(xs) if xs else None
    raise AssertionError(f"no reference for {f.agg}")


def _group_step(
    g: RefGroup, history: list[Acc], event: Any, last_k: int | None
) -> tuple[dict[str, float | None], str, bool]:
    """One event in one entity of one group: (features, status, late).

    ``last_k``: "the previous event" is only known among the ``last_k`` newest
    events (``None``: the definition, without that limit)."""
    t = us(event.event_time)
    times = [a.t for a in history]
    newest = max(times, default=None)
    late = newest is not None and t < newest - GRACE_S * US
    read_t = newest - GRACE_S * US if late and newest is not None else t
    # 1. Before adding: the previous event (at or before the read time), z-scores.
    before = max((ti for ti in times if ti <= read_t), default=None)
    newer = sum(1 for ti in times if ti > read_t)
    known = last_k is None or newer < last_k
    since = read_t - before if before is not None and known else None
    current = Acc(t, event, since / US if g.derives_gap and since is not None else None)
    current.inputs.update({f.name: f.value(current) for f in g.features if f.value is not None})
    out: dict[str, float | None] = {}
    for f in g.features:
        if f.agg == "since_last":
            # "missing if none within the window": the window is (t - W, t].
            out[f.name] = None if since is None or since >= f.window_s * US else since / US
        elif f.agg == "zscore":
            x = current.inputs[f.name]
            others = _values(_in_window(history, read_t, f.window_s), f.name)
            out[f.name] = zscore(x, _mean(others), _std(others))
    # 2. Add (unless late), 3. read everything else.
    if not late:
        history.append(current)
    windows: dict[int, list[Acc]] = {}  # each window filtered once per event

    def window(w: int) -> list[Acc]:
        if w not in windows:
            windows[w] = _in_window(history, read_t, w)
        return windows[w]

    for f in g.features:
        if f.name not in out:
            out[f.name] = _post(f, history, read_t, window)
    others_n = len(window(g.status_window_s)) - (0 if late else 1)
    return out, "PRESENT" if others_n > 0 else "NOT_FOUND", late


def reference(stream: str, events: Iterable[Event], *, last_k: int | None = None) -> list[Expected]:
    """The expected features of ``events``, applied in the given (arrival) order."""
    event_features, ref_groups = REFERENCE[stream]
    histories: dict[tuple[str, str], list[Acc]] = defaultdict(list)
    first: dict[str, Expected] = {}
    out: list[Expected] = []
    for ev in events:
        if ev.event_id in first:  # a re-delivered event: the first vector again
            out.append(first[ev.event_id])
            continue
        values = event_features(ev)
        statuses: dict[str, str] = {}
        late: dict[str, bool] = {}
        for g in ref_groups:
            entity = str(getattr(ev, g.entity_field))
            history = histories[(g.name, entity)]
            vals, statuses[g.name], late[g.name] = _group_step(g, history, ev, last_k)
            values.update(vals)
        first[ev.event_id] = exp = Expected(values, statuses, late)
        out.append(exp)
    return out


# -- comparing ---------------------------------------------------------------

#: Relative tolerances of floats (counts and distinct counts must be equal).
RTOL = 1e-9
RTOL_EWMA = 1e-7


def _mismatch(name: str, agg: str, got: object, exp: float | None) -> bool:
    if exp is None or got is None:
        return not (exp is None and got is None)
    if not isinstance(got, float) or not math.isfinite(got):
        return True
    if agg == "distinct" and exp > DISTINCT_EXACT_UP_TO:
        return abs(got - exp) > 0.05 * exp  # HyperLogLog (p=12): about 1.6% standard error
    if agg in ("count", "distinct"):
        return got != exp
    return not math.isclose(got, exp, rel_tol=RTOL_EWMA if agg == "ewma" else RTOL)


def assert_matches(
    stream: str, got: Sequence[tuple[Event, EventResult]], expected: Sequence[Expected]
) -> None:
    names = model_features(stream)
    _, ref_groups = REFERENCE[stream]
    aggs = {f.name: f.agg for g in ref_groups for f in g.features}
    assert len(got) == len(expected)
    problems: list[str] = []
    for (ev, r), exp in zip(got, expected, strict=True):
        assert list(r.values) == names, "the vector's names or their order"
        assert set(exp.values) == set(names)
        for name in names:
            if _mismatch(name, aggs.get(name, ""), r.values[name], exp.values[name]):
                problems.append(
                    f"{ev.event_id} @ {ev.event_time.isoformat()} {name}: "
                    f"got {r.values[name]!r}, expected {exp.values[name]!r}"
                )
        if r.statuses != exp.statuses:
            problems.append(f"{ev.event_id} statuses: got {r.statuses}, expected {exp.statuses}")
        late = {g: gr.late for g, gr in r.groups.items()}
        if late != exp.late:
            problems.append(f"{ev.event_id} late: got {late}, expected {exp.late}")
    assert not problems, f"{len(problems)} mismatches, first ones:\n" + "\n".join(problems[:25])


# -- the simulated streams -----------------------------------------------------


def _scenario(stream: str, days: int) -> Scenario:
    base = get("small")
    return Scenario(
        name="t",
        description="",
        days=days,
        transactions=None,
        logins=base.logins if stream == "logins" else None,
        sensors=base.sensors if stream == "sensor_readings" else None,
        clicks=base.clicks if stream == "clickstream" else None,
    )


def _kept(stream: str, ev: Any) -> bool:
    """A fixed subset of the entities (all their events are kept)."""
    if stream == "logins":  # a fifth of the accounts (an IP sees the kept accounts' logins)
        return int(ev.account_id[1:]) % 5 == 0
    if stream == "sensor_readings":  # two machines, six sensors
        return str(ev.machine_id) in {"M000", "M005"}
    return int(ev.user_id[1:]) % 3 == 0  # a third of the users, whole sessions


#: Days simulated per stream: enough to reach past the longest windows that matter
#: (1 h, 24 h; 7 days is only partly reached) and small enough for a few seconds.
DAYS = {"logins": 4, "sensor_readings": 2, "clickstream": 2}
SEED = 7


@dataclass(frozen=True)
class SimStream:
    events: list[Event]
    labels: list[Event]


_CACHE: dict[str, SimStream] = {}


def simulated(stream: str) -> SimStream:
    if stream not in _CACHE:
        topics = STREAMS[stream]
        events: list[Event] = []
        labels: list[Event] = []
        for r in _scenario(stream, DAYS[stream]).records(seed=SEED):
            if r.topic == topics.input_topic and _kept(stream, r.event):
                events.append(r.event)
            elif r.topic == topics.label_topic:
                labels.append(r.event)
        _CACHE[stream] = SimStream(events, labels)
    return _CACHE[stream]


def _redelivered(events: Sequence[Event], seed: int) -> list[Event]:
    """``events`` in a new arrival order: 10% delayed by up to 20 minutes (within and
    beyond grace), 5% by 20 minutes to 3 hours, 1% delivered a second time up to an
    hour later."""
    rng = random.Random(seed)
    arrivals: list[tuple[int, int, Event]] = []
    for i, ev in enumerate(events):
        arrival = us(ev.event_time)
        u = rng.random()
        if u < 0.10:
            arrival += rng.randrange(20 * MINUTE * US)
        elif u < 0.15:
            arrival += rng.randrange(20 * MINUTE * US, 3 * HOUR * US)
        arrivals.append((arrival, i, ev))
        if rng.random() < 0.01:
            arrivals.append((arrival + rng.randrange(HOUR * US), len(events) + i, ev))
    return [ev for _, _, ev in sorted(arrivals, key=lambda a: (a[0], a[1]))]


STREAM_NAMES = ("logins", "sensor_readings", "clickstream")


def test_reference_covers_every_declared_feature() -> None:
    for stream in STREAM_NAMES:
        event_features, ref_groups = REFERENCE[stream]
        assert [g.name for g in ref_groups] == [g.name for g in groups(stream)]
        for ours, declared in zip(ref_groups, groups(stream), strict=True):
            assert ours.entity_field == declared.entity.join_key
            assert [f.name for f in ours.features] == declared.feature_names
        names = [
            *event_features(_example(stream)),
            *(f.name for g in ref_groups for f in g.features),
        ]
        assert names == model_features(stream)


@pytest.mark.parametrize("stream", STREAM_NAMES)
def test_simulated_stream_matches_reference(stream: str) -> None:
    sim = simulated(stream)
    events = sim.events
    times = [e.event_time for e in events]
    assert times == sorted(times), "the simulated stream is in event-time order"
    # These streams have no label-derived feature: their labels must change nothing.
    got = list(compute(stream, events, sim.labels))
    assert [e.event_id for e, _ in got] == [e.event_id for e in events]
    expected = reference(stream, events)
    assert_matches(stream, got, expected)
    _assert_not_vacuous(stream, got)
    assert not any(r.late_groups for _, r in got)


@pytest.mark.parametrize("stream", STREAM_NAMES)
def test_redelivered_out_of_order_stream_matches_reference(stream: str) -> None:
    events = _redelivered(simulated(stream).events, seed=len(stream))
    got = list(compute(stream, events))
    expected = reference(stream, events)
    assert_matches(stream, got, expected)
    # Every rule was exercised in every group: merged out of order, too late, re-delivered.
    _, ref_groups = REFERENCE[stream]
    seen: set[str] = set()
    newest: dict[tuple[str, str], datetime] = {}
    out_of_order: dict[str, int] = defaultdict(int)
    late: dict[str, int] = defaultdict(int)
    for ev, r in got:
        if ev.event_id in seen:
            continue
        seen.add(ev.event_id)
        for g in ref_groups:
            key = (g.name, str(getattr(ev, g.entity_field)))
            if r.groups[g.name].late:
                late[g.name] += 1
            elif key in newest and ev.event_time < newest[key]:
                out_of_order[g.name] += 1
            newest[key] = max(newest.get(key, ev.event_time), ev.event_time)
    assert len(got) - len(seen) > 5, "re-delivered events"
    for g in ref_groups:
        assert out_of_order[g.name] >= 5 and late[g.name] >= 5, (g.name, out_of_order, late)


def _assert_not_vacuous(stream: str, got: Sequence[tuple[Event, EventResult]]) -> None:
    """The sample reaches the cases that matter (else the comparison proves little)."""
    vals = [r.values for _, r in got]

    def some(name: str, pred: Callable[[float | None], bool], at_least: int = 5) -> None:
        n = sum(1 for v in vals if pred(v[name]))
        assert n >= at_least, f"{stream}: only {n} events with interesting {name}"

    def is_none(x: float | None) -> bool:
        return x is None

    def above(y: float) -> Callable[[float | None], bool]:
        return lambda x: x is not None and x > y

    if stream == "logins":
        assert len(got) > 1_000
        some("account_secs_since_last", is_none)
        some("account_secs_since_last", above(0))
        some("account_failures_1h", above(0))
        some("account_distinct_devices_7d", above(1))
        some("account_distinct_countries_7d", above(1))
        some("ip_attempts_10m", above(5))
        some("ip_distinct_accounts_1h", above(5))
    elif stream == "sensor_readings":
        assert len(got) > 2_000
        some("reading_value", is_none)
        some("sensor_missing_24h", above(0))
        some("sensor_zscore_24h", above(3), at_least=1)  # a glitch
        some("sensor_zscore_24h", is_none)
        some("sensor_std_1h", above(0))
        some("machine_readings_1h", above(30))
    else:
        assert len(got) > 1_000
        some("session_secs_since_last", is_none)
        some("session_mean_gap_30m", is_none)
        some("session_std_gap_30m", above(0))
        some("session_add_to_cart_30m", above(0))
        some("session_distinct_pages_30m", above(3))
        some("user_purchases_30d", above(0), at_least=1)
        some("user_sessions_events_7d", above(20))


# -- hand-written edge cases ---------------------------------------------------

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)  # a Monday, 12:00 UTC


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def reading(i: int, seconds: float, value: float | None, sensor: str = "M1-temperature") -> Event:
    return SensorReading(
        event_id=f"r{i}",
        event_time=at(seconds),
        machine_id="M1",
        sensor_id=sensor,
        machine_type="pump",
        sensor_type="temperature",
        value=value,
    )


def login(
    i: int,
    seconds: float,
    device: str,
    country: str,
    ip: str = "10.0.0.1",
    *,
    success: bool = True,
    account: str = "A1",
) -> Event:
    return Login(
        event_id=f"l{i}",
        event_time=at(seconds),
        account_id=account,
        device_id=device,
        ip=ip,
        country=country,
        success=success,
    )


def click(
    i: int, seconds: float, session: str, action: ClickAction, page: str, user: str = "u1"
) -> Event:
    return Click(
        event_id=f"c{i}",
        event_time=at(seconds),
        user_id=user,
        session_id=session,
        action=action,
        page=page,
        value=25.0 if action == "purchase" else None,
    )


def _example(stream: str) -> Event:
    if stream == "logins":
        return login(0, 0, "d1", "DE")
    if stream == "sensor_readings":
        return reading(0, 0, 1.0)
    return click(0, 0, "s1", "page_view", "/")


def run(stream: str, events: Sequence[Event]) -> list[EventResult]:
    """The code's results, after checking them against the reference too."""
    got = list(compute(stream, events))
    assert_matches(stream, got, reference(stream, events))
    return [r for _, r in got]


def test_sensor_reading_without_value() -> None:
    r = run(
        "sensor_readings",
        [
            reading(1, 0, 10.0),
            reading(2, 300, None),
            reading(3, 600, 14.0),
            reading(4, 600, None, sensor="M1-pressure"),  # a sensor with no value yet
        ],
    )
    v2 = r[1].values
    # Missing input: counted as missing and as a reading, and missing itself.
    assert v2["reading_value"] is None
    assert v2["sensor_missing_24h"] == 1.0 and v2["machine_missing_24h"] == 1.0
    assert v2["machine_readings_1h"] == 2.0
    # ... but it moves no statistic of the values.
    assert v2["sensor_mean_1h"] == 10.0 and v2["sensor_mean_24h"] == 10.0
    assert v2["sensor_min_1h"] == 10.0 and v2["sensor_max_1h"] == 10.0
    assert v2["sensor_std_1h"] is None  # one value
    assert v2["sensor_ewma_6h"] == 10.0
    assert v2["sensor_zscore_24h"] is None
    assert r[1].statuses == {"sensor_stats": "PRESENT", "machine_health": "PRESENT"}
    v3 = r[2].values
    assert v3["sensor_mean_1h"] == 12.0
    assert v3["sensor_std_1h"] == pytest.approx(math.sqrt(8.0), rel=1e-12)  # ddof=1
    assert (v3["sensor_min_1h"], v3["sensor_max_1h"]) == (10.0, 14.0)
    assert v3["sensor_zscore_24h"] is None  # one other value (the None is no value)
    w = 2.0 ** (-600 / (6 * HOUR))
    assert v3["sensor_ewma_6h"] == pytest.approx((10.0 * w + 14.0) / (w + 1.0), rel=1e-12)
    assert v3["sensor_missing_24h"] == 1.0
    # A sensor whose only reading is missing: its statistics are missing, not 0.
    v4 = r[3].values
    for name in ("sensor_mean_1h", "sensor_std_1h", "sensor_min_1h", "sensor_max_1h"):
        assert v4[name] is None, name
    assert v4["sensor_mean_24h"] is None and v4["sensor_ewma_6h"] is None
    assert v4["sensor_zscore_24h"] is None
    assert v4["sensor_missing_24h"] == 1.0
    assert v4["machine_readings_1h"] == 4.0 and v4["machine_missing_24h"] == 2.0
    assert r[3].statuses == {"sensor_stats": "NOT_FOUND", "machine_health": "PRESENT"}


def test_first_click_of_a_session() -> None:
    r = run(
        "clickstream",
        [
            click(1, 0, "s1", "page_view", "/product/1"),
            click(2, 10, "s1", "search", "/search?q=a"),
            click(3, 40, "s1", "add_to_cart", "/cart/add/1"),
            click(4, 100, "s1", "purchase", "/checkout/confirmation"),
            click(5, 200, "s2", "page_view", "/product/1"),  # the same user's next session
            click(6, 200 + 40 * MINUTE, "s2", "page_view", "/product/2"),  # after 40 minutes
        ],
    )
    first = r[0].values
    assert first["session_secs_since_last"] is None
    assert first["session_mean_gap_30m"] is None and first["session_std_gap_30m"] is None
    assert first["session_events_30m"] == 1.0 and first["session_distinct_pages_30m"] == 1.0
    assert first["session_add_to_cart_30m"] == 0.0  # a measured zero
    assert first["user_sessions_events_7d"] == 1.0 and first["user_purchases_30d"] == 0.0
    assert r[0].statuses == {"session_activity": "NOT_FOUND", "user_history": "NOT_FOUND"}
    second = r[1].values
    assert second["session_secs_since_last"] == 10.0 and second["session_mean_gap_30m"] == 10.0
    assert second["session_std_gap_30m"] is None  # one gap
    third = r[2].values
    assert third["session_mean_gap_30m"] == 20.0
    assert third["session_std_gap_30m"] == pytest.approx(math.sqrt(200.0), rel=1e-12)
    assert third["session_add_to_cart_30m"] == 1.0 and third["click_is_add_to_cart"] == 1.0
    assert r[3].values["user_purchases_30d"] == 1.0
    # A new session of a known user: the session starts from nothing, the user does not.
    s2 = r[4].values
    assert s2["session_secs_since_last"] is None and s2["session_mean_gap_30m"] is None
    assert s2["session_events_30m"] == 1.0
    assert s2["user_sessions_events_7d"] == 5.0 and s2["user_purchases_30d"] == 1.0
    assert r[4].statuses == {"session_activity": "NOT_FOUND", "user_history": "PRESENT"}
    # 40 minutes later: beyond since_last's 30-minute window, but the gap is still the gap.
    late = r[5].values
    assert late["session_secs_since_last"] is None
    assert late["session_mean_gap_30m"] == 40.0 * MINUTE
    assert late["session_events_30m"] == 1.0
    assert r[5].statuses["session_activity"] == "NOT_FOUND"


def test_login_from_new_device_and_country() -> None:
    r = run(
        "logins",
        [
            login(1, 0, "d1", "DE"),
            login(2, HOUR, "d2", "DE"),
            login(3, 2 * HOUR, "d3", "RU", ip="203.0.113.9", success=False),
            login(4, 2 * HOUR + 60, "d3", "RU", ip="203.0.113.9", account="A2", success=False),
            login(5, 7 * DAY + HOUR, "d1", "DE"),  # (t - 7 d, t] starts just after login 2
        ],
    )
    assert r[0].values["account_distinct_devices_7d"] == 1.0
    assert r[0].values["account_secs_since_last"] is None
    v2 = r[1].values
    assert v2["account_distinct_devices_7d"] == 2.0 and v2["account_distinct_countries_7d"] == 1.0
    assert v2["account_attempts_1h"] == 1.0  # login 1 is exactly 1 h back: outside (t - 1h, t]
    assert v2["account_secs_since_last"] == float(HOUR)
    v3 = r[2].values
    assert v3["account_distinct_devices_7d"] == 3.0 and v3["account_distinct_countries_7d"] == 2.0
    assert v3["account_distinct_ips_1d"] == 2.0
    assert v3["account_failures_1h"] == 1.0 and v3["login_success"] == 0.0
    assert v3["ip_attempts_10m"] == 1.0 and v3["ip_distinct_accounts_1h"] == 1.0
    v4 = r[3].values  # the same attacker IP tries another account
    assert v4["ip_attempts_10m"] == 2.0 and v4["ip_distinct_accounts_1h"] == 2.0
    assert v4["ip_failures_1h"] == 2.0
    assert r[3].statuses == {"account_logins": "NOT_FOUND", "ip_logins": "PRESENT"}
    v5 = r[4].values
    # Window (day 0 + 1 h, day 7 + 1 h]: logins 3 (d3, RU) and 5 (d1, DE).
    assert v5["account_distinct_devices_7d"] == 2.0
    assert v5["account_distinct_countries_7d"] == 2.0
    assert v5["account_distinct_ips_1d"] == 1.0
    assert v5["account_secs_since_last"] == float(7 * DAY - HOUR)
    assert v5["login_hour"] == 13.0


def test_out_of_order_sensor_readings_within_and_beyond_grace() -> None:
    events = [
        reading(1, 0, 1.0),  # 12:00
        reading(2, 30 * MINUTE, 3.0),  # 12:30: the newest
        reading(3, 25 * MINUTE, 5.0),  # 12:25: 5 minutes behind, within grace
        reading(4, 5 * MINUTE, 100.0),  # 12:05: 25 minutes behind, beyond grace
        reading(5, 31 * MINUTE, 7.0),  # 12:31
    ]
    got = list(compute("sensor_readings", events))
    assert_matches("sensor_readings", got, reference("sensor_readings", events))
    r = [res for _, res in got]
    # Within grace: merged, read at its own time (12:30 is not yet in its windows)...
    v3 = r[2].values
    assert not r[2].late_groups
    assert v3["sensor_mean_1h"] == 3.0 and v3["machine_readings_1h"] == 2.0
    assert v3["sensor_zscore_24h"] is None  # one other value before it
    # ... but the EWMA is as of the newest event (12:30).
    h = 6 * HOUR
    ws = [2.0 ** (-30 * MINUTE / h), 1.0, 2.0 ** (-5 * MINUTE / h)]
    ewma = (1.0 * ws[0] + 3.0 * ws[1] + 5.0 * ws[2]) / sum(ws)
    assert v3["sensor_ewma_6h"] == pytest.approx(ewma, rel=1e-12)
    # Beyond grace: not merged, read at newest - grace = 12:20, flagged late.
    v4 = r[3].values
    assert r[3].late_groups == ["sensor_stats", "machine_health"]
    assert r[3].groups["sensor_stats"].late and r[3].groups["machine_health"].late
    assert v4["reading_value"] == 100.0
    assert v4["sensor_mean_1h"] == 1.0  # (11:20, 12:20] holds only 12:00
    assert v4["machine_readings_1h"] == 1.0
    assert v4["sensor_ewma_6h"] == pytest.approx(ewma, rel=1e-12)  # unchanged
    assert r[3].statuses == {"sensor_stats": "PRESENT", "machine_health": "PRESENT"}
    # Later events do not see the late reading; they see the one merged within grace.
    v5 = r[4].values
    assert v5["machine_readings_1h"] == 4.0
    assert v5["sensor_max_1h"] == 7.0 and v5["sensor_mean_1h"] == 4.0  # (1 + 3 + 5 + 7) / 4


def test_out_of_order_clicks_within_and_beyond_grace() -> None:
    r = run(
        "clickstream",
        [
            click(1, 0, "s1", "page_view", "/a"),
            click(2, 60, "s1", "page_view", "/b"),
            click(3, 30, "s1", "search", "/c"),  # within grace: previous by event time is 0 s
            click(4, 700, "s1", "page_view", "/d"),
            click(5, 50, "s1", "add_to_cart", "/e"),  # 650 s behind 700 s: beyond grace
            click(6, 710, "s1", "page_view", "/f"),
        ],
    )
    v3 = r[2].values
    assert v3["session_secs_since_last"] == 30.0  # since 0 s, not since 60 s
    assert v3["session_events_30m"] == 2.0  # 0 s and itself; 60 s is later
    assert v3["session_mean_gap_30m"] == 30.0  # its own gap (the gap of 60 s is outside)
    v5 = r[4].values
    assert r[4].late_groups == ["session_activity", "user_history"]
    # Read at 700 - 600 = 100 s: the events of 0, 30 and 60 s; the previous one is 60 s.
    assert v5["session_events_30m"] == 3.0
    assert v5["session_secs_since_last"] == 40.0
    assert v5["session_add_to_cart_30m"] == 0.0  # its own add-to-cart was not merged
    assert v5["click_is_add_to_cart"] == 1.0
    v6 = r[5].values
    assert v6["session_events_30m"] == 5.0 and v6["session_add_to_cart_30m"] == 0.0
    assert v6["session_distinct_pages_30m"] == 5.0  # /a /b /c /d /f, not /e
    # Gaps as computed at arrival: 60 (of 60 s), 30 (of 30 s), 640 (of 700 s), 10 (of 710 s).
    assert v6["session_mean_gap_30m"] == pytest.approx((60 + 30 + 640 + 10) / 4, rel=1e-12)


def test_out_of_order_logins_within_and_beyond_grace() -> None:
    r = run(
        "logins",
        [
            login(1, 0, "d1", "DE"),
            login(2, 20 * MINUTE, "d2", "FR"),
            login(3, 15 * MINUTE, "d3", "NL", success=False),  # within grace
            login(4, 5 * MINUTE, "d4", "RU", success=False),  # beyond grace
            login(5, 21 * MINUTE, "d1", "DE"),
        ],
    )
    v3 = r[2].values
    assert not r[2].late_groups
    assert v3["account_attempts_1h"] == 2.0 and v3["account_failures_1h"] == 1.0
    assert v3["account_distinct_devices_7d"] == 2.0  # d1 and d3; d2 (20 min) is later
    assert v3["account_secs_since_last"] == float(15 * MINUTE)
    v4 = r[3].values
    assert r[3].late_groups == ["account_logins", "ip_logins"]
    # Read at 20 min - 10 min = 10 min: only login 1.
    assert v4["account_attempts_1h"] == 1.0 and v4["account_failures_1h"] == 0.0
    assert v4["account_distinct_countries_7d"] == 1.0
    assert v4["account_secs_since_last"] == float(10 * MINUTE)
    v5 = r[4].values
    assert v5["account_attempts_1h"] == 4.0 and v5["account_failures_1h"] == 1.0
    assert v5["account_distinct_devices_7d"] == 3.0 and v5["account_distinct_countries_7d"] == 3.0
    assert v5["ip_attempts_10m"] == 3.0  # 15, 20 and 21 min: (11 min, 21 min]


def test_zscore_needs_spread_and_two_other_values() -> None:
    r = run(
        "sensor_readings",
        [
            reading(1, 0, 5.0),
            reading(2, 300, 5.0),  # one other value: missing
            reading(3, 600, 6.0),  # two others, no spread: missing
            reading(4, 900, 8.0),  # others 5, 5, 6: mean 16/3, sd sqrt(1/3)
        ],
    )
    assert [x.values["sensor_zscore_24h"] for x in r[:3]] == [None, None, None]
    assert r[2].values["sensor_std_1h"] == pytest.approx(math.sqrt(1 / 3), rel=1e-12)
    z = (8.0 - 16 / 3) / math.sqrt(1 / 3)
    assert r[3].values["sensor_zscore_24h"] == pytest.approx(z, rel=1e-12)


# -- definition edges: window bound, out of order behind a burst, UTC clock -----


def test_since_last_is_missing_for_an_event_exactly_one_window_back() -> None:
    got = list(compute("logins", [login(1, 0, "d1", "DE"), login(2, 30 * DAY, "d1", "DE")]))
    r = got[1][1]
    assert r.values["account_attempts_1h"] == 1.0
    assert r.statuses["account_logins"] == "NOT_FOUND"  # no other event in (t - 30 d, t]
    assert r.values["account_secs_since_last"] is None


def test_previous_click_behind_a_burst_within_grace() -> None:
    events = [click(i, i, "s1", "page_view", f"/p{i}") for i in range(10)]
    events.append(click(99, 0.5, "s1", "search", "/q"))  # 9.5 s behind: well within grace
    got = list(compute("clickstream", events))
    r = got[-1][1]
    assert not r.late_groups and r.values["session_events_30m"] == 2.0  # merged
    assert r.values["session_secs_since_last"] == 0.5
    assert r.values["session_mean_gap_30m"] == 0.5  # its own gap
    assert_matches("clickstream", got, reference("clickstream", events, last_k=None))


def test_login_hour_is_utc_for_a_timestamp_with_an_offset() -> None:
    data = (
        b'{"event_id": "l1", "event_time": "2026-03-02T14:30:00+02:00", "account_id": "A1",'
        b' "device_id": "d1", "ip": "10.0.0.1", "country": "DE", "success": true}'
    )
    ev = decode(Login, data, max_bytes=4096)
    [(_, r)] = list(compute("logins", [ev]))
    assert r.values["login_hour"] == 12.0  # 12:30 UTC
