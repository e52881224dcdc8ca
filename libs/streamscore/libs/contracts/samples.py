"""Seeded sample messages that satisfy their contracts, for contract tests and smoke runs.

This is NOT the simulator: values are plausible-looking but carry no fraud,
failure or conversion patterns worth learning from. What it guarantees:

* every message is valid under its schema (and decodes to itself);
* the same ``(name, seed)`` gives the same sequence, and a shorter run is a
  prefix of a longer one;
* entity keys (customers, terminals, accounts, machines, sessions...) come from
  small skewed pools and repeat, so per-key ordering can be tested;
* ``event_time`` increases; nullable fields are sometimes null.

>>> a = [e.event_id for e in sample_events("transactions", 5, seed=7)]
>>> a == [e.event_id for e in sample_events("transactions", 5, seed=7)]
True
>>> len(set(a))
5
>>> {type(m).__name__ for m in sample_messages("decisions.sensors", 3, seed=1)}
{'SensorDecision'}
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar, cast

from streamscore.libs.contracts.alerts import Change, DriftAlert, SignalKind
from streamscore.libs.contracts.base import Event, Message
from streamscore.libs.contracts.decisions import (
    ClickDecision,
    Decision,
    FeatureStatus,
    LoginDecision,
    Reason,
    SensorDecision,
    TransactionDecision,
)
from streamscore.libs.contracts.dlq import DlqHeaders, DlqRecord
from streamscore.libs.contracts.errors import REASONS
from streamscore.libs.contracts.events import (
    Channel,
    Click,
    ClickAction,
    Login,
    SensorReading,
    SensorType,
    Transaction,
)
from streamscore.libs.contracts.examples import EXAMPLE_KINDS, LabelledExample
from streamscore.libs.contracts.features import (
    ClickFeatures,
    FeatureVector,
    LoginFeatures,
    SensorFeatures,
    TransactionFeatures,
)
from streamscore.libs.contracts.labels import AccountTakeover, Chargeback, Conversion, Failure
from streamscore.libs.contracts.registry import contract_for
from streamscore.libs.contracts.scored import ScoredEvent
from streamscore.libs.topics import STREAMS

__all__ = ["sample_events", "sample_messages"]

T = TypeVar("T")

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
#: Sizes of the key pools (small, so keys repeat).
CUSTOMERS, TERMINALS, ACCOUNTS, MACHINES, USERS = 100, 30, 100, 20, 60
COUNTRIES = ("DE", "FR", "NL", "ES", "IT", "GB", "US", "PL")
USER_AGENTS = ("Mozilla/5.0 (X11; Linux x86_64)", "Mozilla/5.0 (iPhone)", "okhttp/4.12", "curl/8.5")
MACHINE_TYPES = ("pump", "compressor", "turbine")
SENSOR_UNITS = {"vibration": "mm/s", "temperature": "degC", "pressure": "bar"}
FEATURE_GROUPS = ("entity_1d", "entity_7d", "entity_30d", "counterparty_risk")
CHANNELS: tuple[Channel, ...] = ("pos", "pos", "ecommerce", "atm")
SENSOR_TYPES: tuple[SensorType, ...] = ("vibration", "temperature", "pressure")
ACTIONS: tuple[ClickAction, ...] = ("page_view", "page_view", "search", "add_to_cart", "purchase")
STATUSES: tuple[FeatureStatus, ...] = (
    "PRESENT",
    "PRESENT",
    "PRESENT",
    "NOT_FOUND",
    "OUTSIDE_MAX_AGE",
)


class _Gen:
    """Random state shared by the builders of one sequence."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.now = EPOCH

    def tick(self) -> datetime:
        """The next event time (increasing, microsecond resolution)."""
        self.now += timedelta(microseconds=int(self.rng.expovariate(1.0) * 500_000) + 1)
        return self.now

    def id(self, prefix: str) -> str:
        """A unique-looking id: ``prefix-<uuid4>``."""
        return f"{prefix}-{uuid.UUID(int=self.rng.getrandbits(128), version=4)}"

    def key(self, prefix: str, pool: int) -> str:
        """A key from a skewed pool of ``pool`` keys (low numbers are frequent)."""
        return f"{prefix}-{int(self.rng.random() ** 2 * pool):06d}"

    def maybe(self, value: T, p: float = 0.8) -> T | None:
        """``value`` with probability ``p``, else ``None``."""
        return value if self.rng.random() < p else None


def _transaction(g: _Gen) -> Transaction:
    return Transaction(
        event_id=g.id("tx"),
        event_time=g.tick(),
        customer_id=g.key("cust", CUSTOMERS),
        terminal_id=g.key("term", TERMINALS),
        amount=min(round(g.rng.lognormvariate(3.0, 1.2), 2), 1e9),
        currency=g.rng.choice(("EUR", "EUR", "USD", "GBP")),
        channel=g.rng.choice(CHANNELS),
    )


def _login(g: _Gen) -> Login:
    account = int(g.rng.random() ** 2 * ACCOUNTS)
    return Login(
        event_id=g.id("login"),
        event_time=g.tick(),
        account_id=f"acct-{account:06d}",
        device_id=f"dev-{account:06d}-{g.rng.randrange(3)}",
        ip=f"10.{account % 256}.{g.rng.randrange(4)}.{g.rng.randrange(1, 255)}",
        country=COUNTRIES[account % len(COUNTRIES)] if g.rng.random() < 0.95 else "US",
        success=g.rng.random() < 0.9,
        auth_method=g.rng.choice(("password", "sso", "otp", "passkey")),
        user_agent=g.maybe(g.rng.choice(USER_AGENTS)),
    )


def _sensor_reading(g: _Gen) -> SensorReading:
    machine = int(g.rng.random() ** 2 * MACHINES)
    k = g.rng.randrange(3)
    sensor_type = SENSOR_TYPES[k]
    centre = (4.0, 60.0, 8.0)[k]
    return SensorReading(
        event_id=g.id("rd"),
        event_time=g.tick(),
        machine_id=f"mach-{machine:04d}",
        sensor_id=f"mach-{machine:04d}-s{k}",
        machine_type=MACHINE_TYPES[machine % len(MACHINE_TYPES)],
        sensor_type=sensor_type,
        value=g.maybe(round(g.rng.gauss(centre, centre / 10), 3), p=0.98),
        unit=g.maybe(SENSOR_UNITS[sensor_type]),
    )


def _click(g: _Gen) -> Click:
    user = int(g.rng.random() ** 2 * USERS)
    action = g.rng.choice(ACTIONS)
    return Click(
        event_id=g.id("clk"),
        event_time=g.tick(),
        user_id=f"user-{user:06d}",
        session_id=f"sess-{user:06d}-{g.rng.randrange(2)}",
        action=action,
        page=f"/product/{g.rng.randrange(1000)}" if action != "search" else "/search?q=shoes",
        value=round(g.rng.uniform(5, 300), 2) if action == "purchase" else None,
        user_agent=g.maybe(g.rng.choice(USER_AGENTS)),
    )


def _decision_fields(g: _Gen) -> dict[str, Any]:
    groups = g.rng.sample(FEATURE_GROUPS, g.rng.randrange(len(FEATURE_GROUPS) + 1))
    event_time = g.tick()
    return {
        "event_id": g.id("ev"),
        "event_time": event_time,
        "score": round(g.rng.random(), 6),
        "model_version": f"model-{g.rng.randrange(1, 4)}",
        "policy_version": "policy-1",
        "policy_path": g.rng.choice(("model", "model", "rule:velocity", "degraded:redis")),
        "reasons": [
            Reason(code=f"feature:{name}", weight=g.maybe(round(g.rng.uniform(-1, 1), 4)))
            for name in g.rng.sample(FEATURE_GROUPS, g.rng.randrange(4))
        ],
        "feature_freshness": {n: g.maybe(round(g.rng.uniform(0, 3600), 3)) for n in groups},
        "feature_statuses": {n: g.rng.choice(STATUSES) for n in groups},
        "degraded": g.maybe("redis_timeout", p=0.05),
        "decided_at": event_time + timedelta(milliseconds=g.rng.randrange(1, 20)),
    }


def _decision(
    cls: type[Decision], outcomes: tuple[str, ...], **more: object
) -> Callable[[_Gen], Message]:
    def build(g: _Gen) -> Message:
        fields = _decision_fields(g)
        fields["decision"] = g.rng.choice(outcomes)
        fields.update({k: (v(g) if callable(v) else v) for k, v in more.items()})
        return cls(**fields)

    return build


def _features(
    cls: type[FeatureVector], event: Callable[[_Gen], Event]
) -> Callable[[_Gen], Message]:
    def build(g: _Gen) -> Message:
        ev = event(g)
        groups = g.rng.sample(FEATURE_GROUPS, g.rng.randrange(1, len(FEATURE_GROUPS) + 1))
        names = [f"{grp}_f{i}" for grp in groups for i in range(g.rng.randrange(1, 4))]
        return cls(
            event=ev,  # type: ignore[call-arg]
            values={n: g.maybe(round(g.rng.uniform(-5, 500), 4)) for n in names},
            feature_statuses={n: g.rng.choice(STATUSES) for n in groups},
            feature_freshness={n: g.maybe(round(g.rng.uniform(0, 3600), 3)) for n in groups},
            computed_at=ev.event_time + timedelta(microseconds=g.rng.randrange(100, 5000)),
            schema_hash=f"{g.rng.getrandbits(256):064x}",
        )

    return build


def _scored_event(g: _Gen) -> ScoredEvent:
    event_time = g.tick()
    score = g.maybe(round(g.rng.random(), 6), p=0.95)
    return ScoredEvent(
        event_id=g.id("ev"),
        event_time=event_time,
        stream=g.rng.choice(tuple(STREAMS)),
        keys={"customer_id": g.key("C", CUSTOMERS), "terminal_id": g.key("T", TERMINALS)},
        feature_names_hash=f"{g.rng.getrandbits(256):064x}",
        values=[g.maybe(round(g.rng.uniform(-5, 500), 4)) for _ in range(g.rng.randrange(20))],
        model_version=f"model-{g.rng.randrange(1, 4)}",
        policy_version="policy-1",
        score=score,
        decision=g.rng.choice(("approve", "step_up", "block")),
        policy_path="model" if score is not None else "degraded:no_score",
        degraded=None if score is not None else "no_score",
        feature_freshness={n: g.maybe(round(g.rng.uniform(0, 3600), 3)) for n in FEATURE_GROUPS},
        decided_at=event_time + timedelta(milliseconds=g.rng.randrange(1, 20)),
    )


def _labelled_example(g: _Gen) -> LabelledExample:
    scored = _scored_event(g)
    kind = g.rng.choice(EXAMPLE_KINDS)
    matured = kind == "matured_negative"
    label_time = None if matured else scored.event_time + timedelta(days=g.rng.randrange(1, 90))
    return LabelledExample(
        event_id=scored.event_id,
        stream=scored.stream,
        event_time=scored.event_time,
        kind=kind,
        revision=g.rng.randrange(1, 4) if kind == "correction" else 0,
        label=kind == "positive" or (kind == "correction" and g.rng.random() < 0.5),
        label_time=label_time,
        label_id=None if matured else g.id("cb"),
        late=not matured and g.rng.random() < 0.1,
        matured_at=scored.event_time + timedelta(days=120),
        keys=scored.keys,
        feature_names_hash=scored.feature_names_hash,
        values=scored.values,
        model_version=scored.model_version,
        policy_version=scored.policy_version,
        score=scored.score,
        decision=scored.decision,
    )


def _chargeback(g: _Gen) -> Chargeback:
    return Chargeback(
        event_id=g.id("cb"),
        event_time=g.tick(),
        target_event_id=g.id("tx"),
        customer_id=g.key("cust", CUSTOMERS),
        terminal_id=g.key("term", TERMINALS),
        fraud=g.rng.random() < 0.8,
        status="reported" if g.rng.random() < 0.9 else "reversed",
        target_event_time=g.tick() - timedelta(days=g.rng.randrange(2, 60)),
    )


def _account_takeover(g: _Gen) -> AccountTakeover:
    return AccountTakeover(
        event_id=g.id("ato"),
        event_time=g.tick(),
        account_id=g.key("acct", ACCOUNTS),
        confirmed=g.rng.random() < 0.7,
        target_event_id=g.maybe(g.id("login")),
    )


def _failure(g: _Gen) -> Failure:
    now = g.tick()
    return Failure(
        event_id=g.id("fail"),
        event_time=now,
        machine_id=g.key("mach", MACHINES),
        failure_time=now - timedelta(hours=g.rng.randrange(1, 72)),
        failure_mode=g.rng.choice(("bearing", "overheat", "seal_leak")),
        target_event_id=g.maybe(g.id("rd"), p=0.3),
    )


def _conversion(g: _Gen) -> Conversion:
    user = int(g.rng.random() ** 2 * USERS)
    converted = g.rng.random() < 0.2
    return Conversion(
        event_id=g.id("conv"),
        event_time=g.tick(),
        user_id=f"user-{user:06d}",
        session_id=f"sess-{user:06d}-{g.rng.randrange(2)}",
        converted=converted,
        value=round(g.rng.uniform(5, 300), 2) if converted else None,
        target_event_id=g.maybe(g.id("clk"), p=0.5),
    )


def _dlq_record(g: _Gen) -> DlqRecord:
    topic = g.rng.choice([s.input_topic for s in STREAMS.values()])
    return DlqRecord(
        value=g.rng.randbytes(g.rng.randrange(64)),
        key=g.maybe(g.key("cust", CUSTOMERS).encode()),
        headers=DlqHeaders(
            reason=g.rng.choice(REASONS),
            detail="Expected `float` >= 0.0 - at `$.amount`",
            field=g.maybe("$.amount"),
            source_topic=topic,
            source_partition=g.rng.randrange(6),
            source_offset=g.rng.randrange(10**9),
            source_timestamp_ms=g.maybe(int(g.tick().timestamp() * 1000)),
            failed_at=g.tick(),
            service=g.rng.choice(("features", "scorer")),
            schema=g.maybe(contract_for(topic).schema_id),
        ),
    )


def _change(g: _Gen) -> Change:
    signals: tuple[SignalKind, ...] = ("score", "decision_rate", "missing_rate", "feature")
    signal = g.rng.choice(signals)
    feature = {"decision_rate": "block", "feature": "tx_amount"}.get(signal)
    first = g.tick()
    mean = g.maybe(round(g.rng.uniform(0, 100), 4))
    return Change(
        segment=g.rng.choice(("all", "sensor_type=temperature", "sensor_type=other")),
        signal=signal,
        feature=feature,
        detector=g.rng.choice(("page_hinkley", "cusum")),
        first_evidence_at=first,
        confirmed_at=first + timedelta(hours=g.rng.randrange(1, 24)),
        effect_sds=round(g.rng.uniform(-2, 2), 4),
        statistic=round(g.rng.uniform(-3, 3), 4),
        evidence_events=g.rng.randrange(10_000),
        baseline_events=g.rng.randrange(10_000),
        mean=mean,
        baseline_mean=None if mean is None else round(g.rng.uniform(0, 100), 4),
    )


def _drift_alert(g: _Gen) -> DriftAlert:
    head = _change(g)
    fields = {f: getattr(head, f) for f in head.__struct_fields__}
    return DriftAlert(
        alert_id=g.id("alert"),
        kind=g.rng.choice(("drift", "drift", "retrain_trigger")),
        stream=g.rng.choice(tuple(STREAMS)),
        baseline_lag_s=86_400,
        related=[_change(g) for _ in range(g.rng.randrange(3))],
        model_version=g.rng.choice(("none", "model-1")),
        reason="2 signals moved",
        raised_at=g.tick(),
        **fields,
    )


_BUILDERS: dict[str, Callable[[_Gen], Message]] = {
    "transaction": _transaction,
    "login": _login,
    "sensor_reading": _sensor_reading,
    "click": _click,
    "transaction_decision": _decision(TransactionDecision, ("approve", "step_up", "block")),
    "login_decision": _decision(LoginDecision, ("allow", "challenge", "deny")),
    "sensor_decision": _decision(
        SensorDecision,
        ("ok", "inspect", "stop"),
        anomaly_score=lambda g: g.maybe(round(g.rng.uniform(0, 10), 4)),
    ),
    "click_decision": _decision(
        ClickDecision, ("bot", "human"), propensity=lambda g: g.maybe(round(g.rng.random(), 4))
    ),
    "transaction_features": _features(TransactionFeatures, _transaction),
    "login_features": _features(LoginFeatures, _login),
    "sensor_features": _features(SensorFeatures, _sensor_reading),
    "click_features": _features(ClickFeatures, _click),
    "chargeback": _chargeback,
    "account_takeover": _account_takeover,
    "failure": _failure,
    "conversion": _conversion,
    "scored_event": _scored_event,
    "labelled_example": _labelled_example,
    "drift_alert": _drift_alert,
    "dlq_record": _dlq_record,
}


def sample_messages(name: str, n: int, seed: int) -> Iterator[Message]:
    """``n`` valid messages of one contract (a topic, schema name or schema id)."""
    build = _BUILDERS[contract_for(name).name]
    g = _Gen(seed)
    for _ in range(n):
        yield build(g)


def sample_events(stream: str, n: int, seed: int) -> Iterator[Event]:
    """``n`` valid input events of a stream (``"transactions"``, ``"logins"``,
    ``"sensor_readings"``, ``"clickstream"``), deterministic by ``seed``."""
    yield from cast(Iterator[Event], sample_messages(STREAMS[stream].input_topic, n, seed))
