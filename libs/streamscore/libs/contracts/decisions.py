"""Decisions, one type per stream (``schemas/decisions/*``).

>>> from datetime import datetime, timezone
>>> t = datetime(2026, 1, 1, tzinfo=timezone.utc)
>>> d = TransactionDecision(event_id="e1", event_time=t, decision="approve", score=0.01,
...     model_version="m1", policy_version="p1", policy_path="model", reasons=[],
...     feature_freshness={"customer": 1.5}, feature_statuses={"customer": "PRESENT"},
...     degraded=None, decided_at=t)
>>> d.stream
'transactions'
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from streamscore.libs.contracts.base import Id, Message, Timestamp, UnitInterval

FeatureStatus = Literal["PRESENT", "NOT_FOUND", "OUTSIDE_MAX_AGE", "ERROR"]
#: Name of a feature group (a key of ``feature_freshness`` / ``feature_statuses``).
FeatureGroup = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
MAX_REASONS = 16
MAX_FEATURE_GROUPS = 32

TransactionOutcome = Literal["approve", "step_up", "block"]
LoginOutcome = Literal["allow", "challenge", "deny"]
SensorOutcome = Literal["ok", "inspect", "stop"]
ClickOutcome = Literal["bot", "human"]

Version = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]


class Reason(Message, frozen=True):
    """One contribution to a decision: a feature (with its weight) or a rule id (weight null)."""

    code: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
    weight: float | None


class Decision(Message, frozen=True):
    """Fields shared by every decision."""

    event_id: Id
    event_time: Timestamp
    #: Model score in [0, 1]; ``None`` when no model scored (a degraded decision).
    score: UnitInterval | None
    model_version: Version
    policy_version: Version
    #: What decided: ``"model"``, ``"rule:<id>"`` or ``"degraded:<reason>"``.
    policy_path: Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
    reasons: Annotated[list[Reason], msgspec.Meta(max_length=MAX_REASONS)]
    #: Feature group -> age in seconds at decision time (``None``: unknown).
    feature_freshness: Annotated[
        dict[FeatureGroup, float | None], msgspec.Meta(max_length=MAX_FEATURE_GROUPS)
    ]
    feature_statuses: Annotated[
        dict[FeatureGroup, FeatureStatus], msgspec.Meta(max_length=MAX_FEATURE_GROUPS)
    ]
    #: Why a fallback path decided; ``None`` on the normal path.
    degraded: Annotated[str, msgspec.Meta(max_length=256)] | None
    decided_at: Timestamp


class TransactionDecision(Decision, frozen=True):
    """A fraud decision on a transaction (``decisions.transactions``)."""

    decision: TransactionOutcome
    stream: Literal["transactions"] = "transactions"


class LoginDecision(Decision, frozen=True):
    """An account-takeover decision on a login (``decisions.logins``)."""

    decision: LoginOutcome
    stream: Literal["logins"] = "logins"


class SensorDecision(Decision, frozen=True):
    """A maintenance decision on a sensor reading (``decisions.sensors``)."""

    decision: SensorOutcome
    anomaly_score: float | None
    stream: Literal["sensor_readings"] = "sensor_readings"


class ClickDecision(Decision, frozen=True):
    """A bot decision with a conversion propensity (``decisions.clickstream``)."""

    decision: ClickOutcome
    propensity: UnitInterval | None
    stream: Literal["clickstream"] = "clickstream"
