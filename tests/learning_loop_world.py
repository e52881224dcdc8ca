"""The small world of the end-to-end learning-loop test and the figures it reports.

A 32-day transactions-only world (500 cards, 1,000 terminals: about a thousand
payments a day) whose chargebacks arrive within hours to 2.5 days (median one
day: the accelerated label clock; real ones take weeks), with a new fraud
pattern from day 8: card testing, 20 cards a day tested with bursts of 5-10
small payments (fraud scenario 4), which the first model never saw.
"""

from __future__ import annotations

import time
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from confluent_kafka import Consumer
from sklearn.metrics import average_precision_score, roc_auc_score  # type: ignore[import-untyped]

from streamscore.libs.features.definitions import model_features
from streamscore.libs.simulator.chargebacks import ChargebackPolicy
from streamscore.libs.simulator.drift import DriftSpec
from streamscore.libs.simulator.records import SimRecord
from streamscore.libs.simulator.scenario import Scenario
from streamscore.libs.simulator.transaction_stream import TransactionStreamConfig
from streamscore.libs.simulator.transactions import TransactionScenario
from streamscore.libs.topics import STREAMS
from streamscore.services.model_loader import open_model
from streamscore.services.training_set import training_set_path

STREAM = "transactions"
DAYS = 32
DRIFT_DAY = 8
CARD_TESTING = 4  # the simulator's fraud scenario number of the drift
SEED = 17
#: The live policy's first alert threshold (step_up above 0.35).
STEP_UP = 0.35

WORLD = Scenario(
    name="learning-loop",
    description="500 cards, chargebacks within 2.5 days, card testing from day 8",
    days=DAYS,
    transactions=TransactionStreamConfig(
        TransactionScenario(n_customers=500, n_terminals=1_000),
        labels=ChargebackPolicy(
            delay_median_days=1.0,
            delay_sigma=0.4,
            min_delay_days=0.25,
            max_delay_days=2.5,
            duplicate_share=0.0,
            reversal_share=0.0,
        ),
        include_late_labels=False,
    ),
    logins=None,
    sensors=None,
    clicks=None,
    drifts=(DriftSpec(STREAM, "card_testing", DRIFT_DAY, {"per_day": 20}),),
)


def day_of(t: datetime) -> int:
    return int((t - WORLD.start).total_seconds() // 86_400)


def day_label(t: datetime) -> str:
    """``day N HH:MM`` of the world's clock."""
    return f"day {day_of(t):2d} {t:%H:%M}"


@dataclass
class Days:
    """The world's records by scenario day (a label on the day it arrives)."""

    records: dict[int, list[SimRecord]] = field(default_factory=lambda: defaultdict(list))
    #: Transaction event ids of the new pattern, and every transaction's day.
    card_tests: set[str] = field(default_factory=set)
    tx_day: dict[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, records: Iterable[SimRecord]) -> Days:
        d = cls()
        tx_topic = STREAMS[STREAM].input_topic
        for r in records:
            day = day_of(r.event.event_time)
            d.records[day].append(r)
            if r.topic == tx_topic:
                d.tx_day[r.event.event_id] = day
                if r.truth.get("fraud_scenario") == CARD_TESTING:
                    d.card_tests.add(r.event.event_id)
        return d

    def transactions(self, days: Iterable[int]) -> int:
        keep = set(days)
        return sum(1 for day in self.tx_day.values() if day in keep)


@dataclass
class Timeline:
    """Each step of the loop at its wall time and the stream's event time then."""

    started: float = field(default_factory=time.time)
    #: (wall time, newest event time published by then).
    clock: list[tuple[float, datetime]] = field(default_factory=list)
    steps: list[tuple[float, str]] = field(default_factory=list)

    def published(self, newest: datetime) -> None:
        self.clock.append((time.time(), newest))

    def step(self, what: str, at: float | None = None) -> None:
        self.steps.append((time.time() if at is None else at, what))

    def event_time(self, wall: float) -> str:
        seen = [t for w, t in self.clock if w <= wall]
        return day_label(seen[-1]) if seen else "before the feed"

    def render(self) -> str:
        lines = ["  wall(s)  fed up to     step"]
        for wall, what in sorted(self.steps):
            lines.append(f"  {wall - self.started:7.1f}  {self.event_time(wall):12s}  {what}")
        return "\n".join(lines)


def read_decisions(bootstrap: str, topic: str, n: int, timeout_s: float) -> dict[str, Any]:
    """event id -> its decision record (the last read), once ``n`` ids or the timeout."""
    c = Consumer({
        "bootstrap.servers": bootstrap, "group.id": uuid.uuid4().hex,
        "auto.offset.reset": "earliest", "enable.auto.commit": False,
    })  # fmt: skip
    c.subscribe([topic])
    out: dict[str, Any] = {}
    deadline = time.monotonic() + timeout_s
    while len(out) < n and time.monotonic() < deadline:
        for m in c.consume(5000, timeout=0.5):
            if m.error() is None:
                d = msgspec.json.decode(m.value() or b"{}")
                out[d["event_id"]] = d
    c.close()
    return out


def live_recall(decisions: dict[str, Any], days: Days) -> dict[str, dict[str, float]]:
    """Per model version deciding live: card-test events decided, and the share flagged
    (step_up or block), beside the share of the other events flagged."""
    by: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for eid, d in decisions.items():
        row = by[d.get("model_version") or "none"]
        flagged = d["decision"] != "approve"
        if eid in days.card_tests:
            row[0] += 1
            row[1] += flagged
        else:
            row[2] += 1
            row[3] += flagged
    return {
        v: {
            "card_tests": r[0],
            "card_test_recall": r[1] / r[0] if r[0] else float("nan"),
            "others": r[2],
            "others_flagged": r[3] / r[2] if r[2] else float("nan"),
        }
        for v, r in sorted(by.items())
    }


def held_out(sim: Path, first_day: int, folders: dict[str, Path]) -> dict[str, dict[str, float]]:
    """Each model on the offline rows (same feature definitions) of days >= ``first_day``:
    AUC and AP overall, recall of the card tests and of the other frauds at step_up."""
    table = pq.read_table(training_set_path(sim, STREAM))
    times = table.column("event_time").to_pylist()
    days = np.array([day_of(t if t.tzinfo else t.replace(tzinfo=UTC)) for t in times])
    table = table.filter(pa.array(days >= first_day))
    names = model_features(STREAM)
    X = np.column_stack(
        [table.column(n).to_numpy(zero_copy_only=False).astype(np.float32) for n in names]
    )
    y = table.column("truth_fraud").to_numpy(zero_copy_only=False).astype(int)
    scen = table.column("truth_fraud_scenario").to_numpy(zero_copy_only=False)
    out: dict[str, dict[str, float]] = {}
    for name, folder in folders.items():
        _m, session, _r = open_model(folder, STREAM)
        s = session.predict(X).astype(float)
        ct, other = scen == CARD_TESTING, (y == 1) & (scen != CARD_TESTING)
        out[name] = {
            "rows": float(len(y)),
            "auc": float(roc_auc_score(y, s)),
            "ap": float(average_precision_score(y, s)),
            "card_tests": float(ct.sum()),
            "card_test_recall": float((s[ct] > STEP_UP).mean()) if ct.any() else float("nan"),
            "other_fraud_recall": float((s[other] > STEP_UP).mean()) if other.any() else 0.0,
            "legit_flagged": float((s[y == 0] > STEP_UP).mean()),
        }
    return out
