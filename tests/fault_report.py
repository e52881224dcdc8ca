"""The fault suite's report: one line per scenario, computed the same way everywhere (issue #9).

Every test of ``tests/fault/`` ends with a :class:`FaultReport` built by
:func:`fault_report` from what it already has:

* the **inputs** (:class:`Sent`): each event's id and the Kafka timestamp of
  its input record (ms). The topics keep ``CreateTime`` (no
  ``message.timestamp.type`` in ``libs/topics.py``): the producer stamps the
  send time, so an input's and an output's timestamps come from producers on
  the one machine the suite runs on (one clock);
* the **outputs** read afterwards (:class:`Out`): decisions, feature records,
  labelled examples, Parquet rows or incidents, each with its event id, the
  fields a conflicting duplicate compares (``outcome``) and, where known, when
  it became visible (the Kafka timestamp of the output record, ms);
* the **faults** as wall-time windows ``(start_s, end_s)`` taken where the test
  kills, stops or restarts something (``end_s == start_s`` for a kill nothing
  restarts, e.g. a consumer group member whose partitions the survivor takes).

The figures (FAULTS.md, "Oracle and reporting conventions"):

* **lost**: input ids with no output; **dup**: output records beyond one per
  decided id (per id and ``slot``: an example's revisions are distinct
  outputs); **conflicting**: ids (and slot) with two outputs of different
  ``outcome``; **extra**: outputs of ids that are not inputs (printed only
  when there are any);
* **latency** of an event: its first output's timestamp minus its input's
  (the earliest input record of the id, if it was published twice: a retry or
  a DLQ replay re-publishes it), as p50/p99/max (nearest rank) over the events
  published **before** the first fault, **during** one (input timestamp in a
  fault's window) and **after** (the rest);
* **recovery** after a fault: from its end until no input is left waiting
  for its output longer than ``threshold_ms`` (1 s by default: this machine's
  undisturbed p99 is well under it). An event whose latency exceeded the
  threshold was *overdue* from its input time + threshold until its output;
  the fault is recovered at the last output of the events overdue after its
  end (counting those overdue before the next fault starts), or at its end if
  there are none. A fault whose outputs never caught up before the next fault
  is therefore charged until they did (lost events count as lost, not here).
  It needs events published from the
  fault's start on: where every input was published before it (a backlog read
  by a restarted service), latency only measures the backlog and recovery is
  ``n/a``. With several faults the worst is reported;
* **first output** after a fault: from its end until the first output
  timestamped at or after it (the "restart to first decision" of FAULTS K5);
  the worst over the faults.

Nothing here asserts a bound on time: the figures are printed (speed is
measured by benchmarks, never by timed asserts in tests).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import msgspec

Phase = Literal["before", "during", "after"]
PHASES: tuple[Phase, ...] = ("before", "during", "after")
#: Latency above which an output counts as late for the recovery time.
THRESHOLD_MS = 1000.0


@dataclass(frozen=True)
class Sent:
    """One input: its event id and its input record's Kafka timestamp (ms; None: unknown)."""

    event_id: str
    at_ms: float | None = None


@dataclass(frozen=True)
class Out:
    """One output record of an event.

    ``outcome``: what two outputs of one event must agree on (a conflicting
    duplicate is a disagreement); ``at_ms``: when it became visible (its Kafka
    timestamp, ms; None: unknown); ``slot``: outputs of one event with different
    slots are distinct, not duplicates (a labelled example's revision).
    """

    event_id: str
    outcome: Hashable
    at_ms: float | None = None
    slot: Hashable = None


@dataclass(frozen=True)
class Latency:
    """Nearest-rank percentiles of the latencies of ``n`` events, in ms."""

    n: int
    p50_ms: float
    p99_ms: float
    max_ms: float

    def text(self) -> str:
        """``p50/p99/max ms (n)``."""
        return f"{_ms(self.p50_ms)}/{_ms(self.p99_ms)}/{_ms(self.max_ms)} ms ({self.n:,})"


@dataclass(frozen=True)
class Counts:
    """The oracle's counts over the inputs' ids."""

    lost: int
    dup: int
    conflicting: int
    extra: int


@dataclass(frozen=True)
class FaultReport:
    """The figures of one scenario; :meth:`line` is what the suite prints."""

    scenario: str
    unit: str
    output_name: str
    events: int
    lost: int
    dup: int
    conflicting: int
    extra: int
    faults: int
    latency: dict[Phase, Latency | None]
    #: None: not applicable (no input published from a fault's start on, or no timestamps).
    recovery_s: float | None
    #: None: no output after any fault's end, or no output timestamps.
    first_output_s: float | None
    threshold_ms: float = THRESHOLD_MS
    note: str = ""

    def line(self) -> str:
        """One line, the same fields in the same order for every scenario."""
        head = (
            f"FAULT {self.scenario}: {self.events:,} {self.unit}, lost {self.lost}, "
            f"dup {self.dup}, conflicting {self.conflicting}"
        )
        if self.extra:
            head += f", extra {self.extra}"
        worst = f", worst of {self.faults} faults" if self.faults > 1 else ""
        if any(v is not None for v in self.latency.values()):
            phases = ", ".join(
                f"{p} {v.text() if v is not None else '-'}" for p, v in self.latency.items()
            )
            lat = f"latency p50/p99/max (n) {phases}"
        else:
            lat = "latency n/a"
        if self.recovery_s is None:
            rec = "recovery n/a"
        else:
            rec = (
                f"recovery {self.recovery_s:.1f} s (fault end until no input waits over "
                f"{_ms(self.threshold_ms)} ms for its {self.output_name}{worst})"
            )
        if self.first_output_s is None:
            first = f"first {self.output_name} after the fault n/a"
        else:
            first = (
                f"first {self.output_name} {self.first_output_s:.1f} s after the fault's end"
                f"{' (' + worst.removeprefix(', ') + ')' if worst else ''}"
            )
        out = f"{head}; {lat}; {rec}; {first}"
        return f"{out}; {self.note}" if self.note else out

    def __str__(self) -> str:
        return self.line()


class KafkaRecord(Protocol):
    """What this module reads of a consumed record (``confluent_kafka.Message``)."""

    def timestamp(self) -> tuple[int, int]: ...

    def value(self) -> bytes | None: ...


def kafka_ms(record: KafkaRecord) -> float | None:
    """The record's timestamp in ms (None when the broker gave none)."""
    kind, ms = record.timestamp()
    return float(ms) if kind != 0 and ms > 0 else None


def sent_from(
    records: Iterable[KafkaRecord],
    event_id: Callable[[bytes], str | None],
    *,
    ids: Iterable[str] | None = None,
) -> list[Sent]:
    """Inputs from consumed input records (``event_id``: the id of a value, None: not an event).

    ``ids``: the ids the test published. Each is an input whether it was read
    back or not (one that was not has no time, and counts as lost if nothing
    decided it); records of other ids are left out.
    """
    out = []
    for r in records:
        eid = event_id(r.value() or b"")
        if eid is not None:
            out.append(Sent(eid, kafka_ms(r)))
    if ids is None:
        return out
    want = set(ids)
    seen = {s.event_id for s in out}
    return [s for s in out if s.event_id in want] + [Sent(i) for i in sorted(want - seen)]


def outs_from(
    records: Iterable[KafkaRecord], decode: Callable[[bytes], tuple[str, Hashable]]
) -> list[Out]:
    """Outputs from consumed output records (``decode``: value -> (event id, outcome))."""
    out = []
    for r in records:
        event_id, outcome = decode(r.value() or b"")
        out.append(Out(event_id, outcome, kafka_ms(r)))
    return out


class _Id(msgspec.Struct):
    event_id: str


class _Decision(msgspec.Struct):
    event_id: str
    decision: str
    score: float | None
    model_version: str
    policy_path: str


def input_id(value: bytes) -> str | None:
    """The ``event_id`` of an input event record (any stream's JSON event); None: poison."""
    try:
        return msgspec.json.decode(value, type=_Id).event_id
    except msgspec.MsgspecError:
        return None


class _Features(msgspec.Struct):
    event: _Id


def feature_id(value: bytes) -> str:
    """The ``event_id`` of a feature record (the event it enriches)."""
    return msgspec.json.decode(value, type=_Features).event.event_id


def decision(value: bytes) -> tuple[str, Hashable]:
    """A decision record's event id and outcome: decision, score, model and policy path."""
    d = msgspec.json.decode(value, type=_Decision)
    return d.event_id, (d.decision, d.score, d.model_version, d.policy_path)


def counts(input_ids: Iterable[str], outputs: Sequence[Out]) -> Counts:
    """Lost, dup, conflicting and extra (see the module's docstring)."""
    ids = set(input_ids)
    per_slot: dict[tuple[str, Hashable], list[Hashable]] = defaultdict(list)
    extra: set[str] = set()
    for o in outputs:
        if o.event_id in ids:
            per_slot[(o.event_id, o.slot)].append(o.outcome)
        else:
            extra.add(o.event_id)
    decided = {eid for eid, _slot in per_slot}
    return Counts(
        lost=len(ids - decided),
        dup=sum(len(v) - 1 for v in per_slot.values()),
        conflicting=sum(1 for v in per_slot.values() if len(set(v)) > 1),
        extra=len(extra),
    )


def latencies(inputs: Sequence[Sent], outputs: Sequence[Out]) -> dict[str, tuple[float, float]]:
    """Per event with both timestamps: ``(input ms, first output ms)``.

    The input's time is its earliest input record's, the output's its earliest
    output's.
    """
    first_in: dict[str, float] = {}
    for s in inputs:
        if s.at_ms is not None:
            first_in[s.event_id] = min(s.at_ms, first_in.get(s.event_id, math.inf))
    first_out: dict[str, float] = {}
    for o in outputs:
        if o.at_ms is not None and o.event_id in first_in:
            first_out[o.event_id] = min(o.at_ms, first_out.get(o.event_id, math.inf))
    return {eid: (first_in[eid], at) for eid, at in first_out.items()}


def stamp_ms(at_s: float) -> int:
    """A wall time (s) as the timestamp of a record stamped then: ms, truncated.

    Fault windows are compared with record timestamps this way, so a record
    stamped in the millisecond a fault started counts as during it.
    """
    return math.floor(at_s * 1e3)


def phase_of(at_ms: float, faults: Sequence[tuple[float, float]]) -> Phase:
    """Of a record stamped ``at_ms``: before the first fault's start, during a fault's
    window (ends included), or after (windows in wall-time s, see :func:`stamp_ms`)."""
    if not faults or at_ms < min(stamp_ms(start) for start, _end in faults):
        return "before"
    if any(stamp_ms(start) <= at_ms <= stamp_ms(end) for start, end in faults):
        return "during"
    return "after"


def summary(values_ms: Sequence[float]) -> Latency | None:
    """p50/p99/max by nearest rank (the value at rank ceil(p·n)); None for no values."""
    if not values_ms:
        return None
    xs = sorted(values_ms)

    def rank(p: float) -> float:
        return xs[max(0, math.ceil(p * len(xs)) - 1)]

    return Latency(len(xs), rank(0.50), rank(0.99), xs[-1])


def recovery_s(
    timed: dict[str, tuple[float, float]],
    faults: Sequence[tuple[float, float]],
    threshold_ms: float = THRESHOLD_MS,
) -> float | None:
    """The worst fault's recovery time, s (see the module's docstring); None: n/a."""
    ordered = sorted(faults)
    late = [(sent + threshold_ms, out) for sent, out in timed.values() if out - sent > threshold_ms]
    worst: float | None = None
    for i, (start, end) in enumerate(ordered):
        start_ms, end_ms = stamp_ms(start), stamp_ms(end)
        next_ms = stamp_ms(ordered[i + 1][0]) if i + 1 < len(ordered) else math.inf
        if not any(sent >= start_ms for sent, _out in timed.values()):
            continue  # nothing published from the fault on: no latency to recover
        # Outputs of the events overdue after the fault's end (and before the next fault).
        caught_up = max(
            (out for due, out in late if due < next_ms and out > end_ms), default=end_ms
        )
        took = (caught_up - end_ms) / 1e3
        worst = took if worst is None else max(worst, took)
    return worst


def first_output_s(outputs: Sequence[Out], faults: Sequence[tuple[float, float]]) -> float | None:
    """The worst fault's time from its end to the first output at or after it, s."""
    times = sorted(o.at_ms for o in outputs if o.at_ms is not None)
    worst: float | None = None
    for _start, end in faults:
        after = [t for t in times if t >= stamp_ms(end)]
        if after:
            took = max(0.0, after[0] / 1e3 - end)
            worst = took if worst is None else max(worst, took)
    return worst


def fault_report(
    scenario: str,
    inputs: Sequence[Sent],
    outputs: Sequence[Out],
    faults: Sequence[tuple[float, float]],
    *,
    unit: str = "events",
    output_name: str = "decision",
    threshold_ms: float = THRESHOLD_MS,
    note: str = "",
) -> FaultReport:
    """The report of one scenario (every figure as the module's docstring defines it)."""
    c = counts((s.event_id for s in inputs), outputs)
    timed = latencies(inputs, outputs)
    by_phase: dict[Phase, list[float]] = {p: [] for p in PHASES}
    for sent, out in timed.values():
        by_phase[phase_of(sent, faults)].append(out - sent)
    return FaultReport(
        scenario=scenario,
        unit=unit,
        output_name=output_name,
        events=len({s.event_id for s in inputs}),
        lost=c.lost,
        dup=c.dup,
        conflicting=c.conflicting,
        extra=c.extra,
        faults=len(faults),
        latency={p: summary(v) for p, v in by_phase.items()},
        recovery_s=recovery_s(timed, faults, threshold_ms),
        first_output_s=first_output_s(outputs, faults),
        threshold_ms=threshold_ms,
        note=note,
    )


def _ms(v: float) -> str:
    return f"{v:,.0f}" if v >= 10 else f"{v:.1f}"
