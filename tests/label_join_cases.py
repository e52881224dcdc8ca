"""Random label-join scenarios and a brute-force oracle, shared by the joiner's tests.

A scenario is a list of inputs (scored records and labels) in arrival order,
built from per-event stories: no label, a report, a report redelivered, a
second report, a report then its reversal, a reversal read before its report,
an explicit negative, a label before its decision, a duplicated scored record,
and labels for events that never come. The oracle (:func:`brute_force`) runs the
documented rules with full scans and no buckets index.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from streamscore.libs.contracts.scored import ScoredEvent
from streamscore.libs.labels.facts import LabelFact, LabelRef
from streamscore.libs.labels.spec import HOUR_US, JoinSpec, to_us

T0 = datetime(2026, 3, 1, tzinfo=UTC)
HASH = "ab" * 32


@dataclass(frozen=True)
class ScoredIn:
    event: ScoredEvent


@dataclass(frozen=True)
class LabelIn:
    fact: LabelFact


Input = ScoredIn | LabelIn


def scored_event(event_id: str, hours: float, *, seed: int = 0) -> ScoredEvent:
    rng = random.Random(f"{event_id}/{seed}")
    t = T0 + timedelta(hours=hours)
    return ScoredEvent(
        event_id=event_id,
        event_time=t,
        stream="transactions",
        keys={"customer_id": f"C{rng.randrange(50)}", "terminal_id": f"T{rng.randrange(9)}"},
        feature_names_hash=HASH,
        values=[rng.choice([None, 1.5, -0.0, rng.random()]) for _ in range(6)],
        model_version=rng.choice(["m-1", "m-2"]),
        policy_version="p-1",
        score=round(rng.random(), 6),
        decision=rng.choice(["approve", "step_up", "block"]),
        policy_path="model",
        degraded=None,
        feature_freshness={},
        decided_at=t + timedelta(milliseconds=3),
    )


def _label(label_id: str, target: str, at_h: float, positive: bool) -> LabelIn:
    ref = LabelRef(to_us(T0 + timedelta(hours=at_h)), label_id, positive)
    return LabelIn(LabelFact(ref, target))


@dataclass
class Scenario:
    inputs: list[Input]
    #: Ids of the scored events (each once, whatever the duplicates).
    events: list[str] = field(default_factory=list)


def scenario(
    rng: random.Random, n: int, *, span_h: float = 40.0, horizon_h: float = 10.0
) -> Scenario:
    """``n`` event stories, arrival-ordered by a jittered time, plus a final far tick."""
    timed: list[tuple[float, int, Input]] = []
    seq = 0

    def at(t: float, x: Input) -> None:
        nonlocal seq
        timed.append((t, seq, x))
        seq += 1

    events = []
    for i in range(n):
        eid = f"e{i:05d}"
        t = rng.uniform(0, span_h)
        events.append(eid)
        arrive = t + rng.uniform(0, 0.2)
        ev = ScoredIn(scored_event(eid, t))
        story = rng.choice(
            ["none", "none", "report", "redelivered", "second", "reversal", "reversal_first",
             "negative", "before", "dup_scored", "late"]
        )  # fmt: skip
        delay = rng.uniform(0.5, horizon_h * 0.8)
        if story == "before":
            # The label is read before its decision (the log lags behind the labels).
            at(t + 0.01, _label(f"L{i}", eid, t + 0.01, True))
            at(t + 0.2, ev)
            continue
        at(arrive, ev)
        if story == "report":
            at(t + delay, _label(f"L{i}", eid, t + delay, True))
        elif story == "redelivered":
            lab = _label(f"L{i}", eid, t + delay, True)
            at(t + delay, lab)
            at(t + delay + rng.uniform(0, 2), lab)
        elif story == "second":
            at(t + delay, _label(f"L{i}", eid, t + delay, True))
            at(t + delay + 1, _label(f"L{i}-dup", eid, t + delay + 1, True))
        elif story == "reversal":
            at(t + delay, _label(f"L{i}", eid, t + delay, True))
            at(t + delay + 1.5, _label(f"L{i}-rev", eid, t + delay + 1.5, False))
        elif story == "reversal_first":
            at(t + delay, _label(f"L{i}-rev", eid, t + delay + 1.5, False))
            at(t + delay + 0.1, _label(f"L{i}", eid, t + delay, True))
        elif story == "negative":
            at(t + delay, _label(f"L{i}", eid, t + delay, False))
        elif story == "dup_scored":
            at(arrive + rng.uniform(0, 3), ev)
        elif story == "late":
            late_t = t + horizon_h + rng.uniform(0.5, 2)
            at(late_t, _label(f"L{i}", eid, late_t, True))
        if rng.random() < 0.05:  # a label for an event that never comes
            at(t + delay, _label(f"U{i}", f"unknown-{i}", t + delay, True))
    at(span_h * 10, ScoredIn(scored_event("tick", span_h * 10)))
    events.append("tick")
    timed.sort(key=lambda x: (x[0], x[1]))
    return Scenario([x for _, _, x in timed], events)


def batches(rng: random.Random, inputs: list[Input], max_size: int = 20) -> list[list[Input]]:
    out, i = [], 0
    while i < len(inputs):
        k = rng.randint(1, max_size)
        out.append(inputs[i : i + k])
        i += k
    return out


def with_redeliveries(rng: random.Random, inputs: list[Input], share: float) -> list[Input]:
    """Each input, with probability ``share``, delivered again a little later."""
    out = list(inputs)
    for x in inputs:
        if x.event_id_hint != "tick" and rng.random() < share:
            pos = out.index(x)
            out.insert(min(len(out) - 1, pos + rng.randint(1, 10)), x)
    return out


def _hint(x: Input) -> str:
    return x.event.event_id if isinstance(x, ScoredIn) else (x.fact.target_event_id or "")


ScoredIn.event_id_hint = property(_hint)  # type: ignore[attr-defined]
LabelIn.event_id_hint = property(_hint)  # type: ignore[attr-defined]

#: (event_id, kind, revision, value, label id, late) of an emitted example.
Row = tuple[str, str, int, bool, str | None, bool]


def brute_force(
    spec: JoinSpec, batched: list[list[Input]], *, labels_caught_up: bool = True
) -> dict[str, list[Row]]:
    """The documented rules, by full scans: per event id, its examples in order."""
    out: dict[str, list[Row]] = defaultdict(list)
    recs: dict[str, dict[str, object]] = {}
    orphans: dict[str, tuple[LabelRef, int]] = {}
    closed: set[str] = set()
    wm: int | None = None
    lwm: int | None = None
    closed_through: int | None = None
    matured_through: int | None = None
    orphans_through: int | None = None
    B = spec.bucket_us

    def relabel(eid: str, r: dict[str, object], lab: LabelRef) -> bool:
        cur = r["label"]
        if cur is not None and lab.key <= cur.key:  # type: ignore[attr-defined]
            return False
        before = bool(cur.positive) if cur is not None else False  # type: ignore[attr-defined]
        r["label"] = lab
        late = lab.time_us > int(r["t"]) + spec.horizon_us  # type: ignore[call-overload]
        if r["state"] == "pending":
            r["state"] = "labelled"
            r["rev"] = 0
            out[eid].append((eid, "positive" if lab.positive else "negative", 0, lab.positive,
                             lab.label_id, late))  # fmt: skip
        elif lab.positive != before:
            r["rev"] = int(r["rev"]) + 1  # type: ignore[call-overload]
            out[eid].append((eid, "correction", int(r["rev"]), lab.positive, lab.label_id, late))  # type: ignore[call-overload]
        return True

    def mature(eid: str, r: dict[str, object]) -> None:
        r["state"] = "matured"
        r["rev"] = 0
        out[eid].append((eid, "matured_negative", 0, False, None, False))

    for batch in batched:
        for x in batch:
            if isinstance(x, ScoredIn):
                ev = x.event
                t = to_us(ev.event_time)
                wm = max(wm, t - spec.lateness_us) if wm is not None else t - spec.lateness_us
                b = (t + spec.horizon_us) // B
                if closed_through is not None and b <= closed_through:
                    continue
                if ev.event_id in recs:
                    continue
                r: dict[str, object] = {"t": t, "label": None, "state": "pending", "rev": -1}
                recs[ev.event_id] = r
                if ev.event_id in orphans:
                    relabel(ev.event_id, r, orphans.pop(ev.event_id)[0])
                if r["state"] == "pending" and matured_through is not None and b <= matured_through:
                    mature(ev.event_id, r)
            else:
                f = x.fact
                lt = f.label.time_us
                lwm = lt if lwm is None else max(lwm, lt)
                target = f.target_event_id
                if target is None:
                    continue
                if target in recs:
                    relabel(target, recs[target], f.label)
                    continue
                if target in orphans:
                    held, exp = orphans[target]
                    if f.label.key > held.key:
                        orphans[target] = (f.label, exp)
                    continue
                exp = f.label.time_us + spec.orphan_ttl_us
                if orphans_through is not None and exp // B <= orphans_through:
                    continue
                orphans[target] = (f.label, exp)
        if labels_caught_up or wm is None:
            clock = wm
        else:  # held at the newest label time read (one label partition), minus lateness
            clock = min(wm, (lwm if lwm is not None else -(2**62)) - spec.lateness_us)
        if clock is None:
            continue
        passed = clock // B - 1
        closable = (clock - spec.grace_us) // B - 1
        # Full scans, in the machine's order (bucket, then arrival) for comparable sequences.
        due = sorted(
            (e for e, r in recs.items() if r["state"] == "pending"),
            key=lambda e: (int(recs[e]["t"]) + spec.horizon_us) // B,  # type: ignore[call-overload]
        )
        for e in due:
            if (int(recs[e]["t"]) + spec.horizon_us) // B <= passed:  # type: ignore[call-overload]
                mature(e, recs[e])
        matured_through = passed if matured_through is None else max(matured_through, passed)
        for e in [e for e, r in recs.items() if (int(r["t"]) + spec.horizon_us) // B <= closable]:  # type: ignore[call-overload]
            closed.add(e)
            del recs[e]
        closed_through = closable if closed_through is None else max(closed_through, closable)
        for o in [o for o, (_, exp) in orphans.items() if exp // B <= passed]:
            del orphans[o]
        orphans_through = passed if orphans_through is None else max(orphans_through, passed)
    return dict(out)


DEFAULT_SPEC = JoinSpec(
    horizon_us=10 * HOUR_US, grace_us=2 * HOUR_US, orphan_ttl_us=5 * HOUR_US, lateness_us=0
)
