"""The scored-event log (``schemas/log/scored_event``): every decision's exact inputs, for audit,
training and replay.

>>> from datetime import datetime, timezone
>>> t = datetime(2026, 1, 1, tzinfo=timezone.utc)
>>> r = ScoredEvent(event_id="e1", event_time=t, stream="transactions",
...     keys={"customer_id": "C1"}, feature_names_hash="0" * 64, values=[1.5, None],
...     model_version="m1", policy_version="p1", score=0.2, decision="approve",
...     policy_path="model", degraded=None, feature_freshness={}, decided_at=t)
>>> r.values[1] is None
True
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from streamscore.libs.contracts.base import Id, Message, Timestamp, UnitInterval
from streamscore.libs.contracts.decisions import MAX_FEATURE_GROUPS, FeatureGroup, Version
from streamscore.libs.contracts.features import MAX_FEATURES, SchemaHash

Text = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
#: The model slot that decided a logged event (v2): shadow decisions are never logged.
ModelRole = Literal["champion", "canary"]


class ScoredEvent(Message, frozen=True):
    """One scored event: the model input vector exactly as the model saw it, and the outcome.

    ``values`` follows the model manifest's feature order (its hash is
    ``feature_names_hash``); ``None`` is a missing value. ``model_role`` (v2)
    says whether the champion or a canary challenger decided: the monitor
    watches the champion's scores and outcomes only.
    """

    event_id: Id
    event_time: Timestamp
    stream: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    keys: Annotated[dict[Text, Text], msgspec.Meta(max_length=16)]
    feature_names_hash: SchemaHash
    values: Annotated[list[float | None], msgspec.Meta(max_length=MAX_FEATURES)]
    model_version: Version
    policy_version: Version
    score: UnitInterval | None
    decision: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    policy_path: Text
    degraded: Annotated[str, msgspec.Meta(max_length=256)] | None
    feature_freshness: Annotated[
        dict[FeatureGroup, float | None], msgspec.Meta(max_length=MAX_FEATURE_GROUPS)
    ]
    decided_at: Timestamp
    model_role: ModelRole = "champion"
