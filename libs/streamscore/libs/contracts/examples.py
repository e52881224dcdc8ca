"""Labelled examples (``schemas/log/labelled_example``): a scored event joined to its final label.

The label joiner writes them to ``examples.labelled`` (keyed by ``event_id``)
for retraining and realised performance. Per scored event there is exactly
one *primary* example, ``revision`` 0:

* ``positive`` / ``negative``: its first label arrived before it matured
  (``negative``: a label that says "not fraud", e.g. a cleared takeover);
* ``matured_negative``: no label by its maturity horizon (``label_time`` is
  ``None``; ``matured_at`` says when the horizon passed).

Each later change of the effective label (the latest label by label time,
then label id) is a ``correction`` with the next ``revision``; ``late`` says
the deciding label arrived after the event's horizon. A reader keeps, per
``event_id``, the highest ``revision`` (equivalently the latest
``label_time``, a matured negative's counting as earliest).

>>> from datetime import datetime, timezone
>>> t = datetime(2026, 1, 1, tzinfo=timezone.utc)
>>> ex = LabelledExample(event_id="e1", stream="transactions", event_time=t, kind="positive",
...     revision=0, label=True, label_time=t, label_id="cb1", late=False, matured_at=t,
...     keys={"customer_id": "C1"}, feature_names_hash="0" * 64, values=[1.0, None],
...     model_version="m1", policy_version="p1", score=0.9, decision="block")
>>> ex.kind, ex.label
('positive', True)
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from streamscore.libs.contracts.base import Id, Message, Timestamp, UnitInterval
from streamscore.libs.contracts.decisions import Version
from streamscore.libs.contracts.features import MAX_FEATURES, SchemaHash

Text = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
ExampleKind = Literal["positive", "negative", "matured_negative", "correction"]
#: Every kind, in the order the joiner documents them.
EXAMPLE_KINDS: tuple[ExampleKind, ...] = ("positive", "negative", "matured_negative", "correction")


class LabelledExample(Message, frozen=True):
    """One labelled example: the logged model input and outcome, and the label it earned."""

    event_id: Id
    stream: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    event_time: Timestamp
    kind: ExampleKind
    revision: Annotated[int, msgspec.Meta(ge=0)]
    label: bool
    label_time: Timestamp | None
    label_id: Id | None
    late: bool
    matured_at: Timestamp
    keys: Annotated[dict[Text, Text], msgspec.Meta(max_length=16)]
    feature_names_hash: SchemaHash
    values: Annotated[list[float | None], msgspec.Meta(max_length=MAX_FEATURES)]
    model_version: Version
    policy_version: Version
    score: UnitInterval | None
    decision: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
