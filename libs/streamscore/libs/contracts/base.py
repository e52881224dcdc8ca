"""Shared field types and the base Struct of every contract message.

Every message is a frozen msgspec Struct that rejects unknown fields and is
built with keyword arguments only; its constraints mirror the latest version of
its JSON Schema file under ``schemas/`` (checked by ``tests/contract``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Final

import msgspec

#: Longest id (event, entity, model version...).
MAX_ID_LENGTH: Final = 128

#: A non-empty id of at most 128 characters.
Id = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_ID_LENGTH)]
#: An RFC 3339 timestamp that must carry a timezone (producers send UTC).
Timestamp = Annotated[datetime, msgspec.Meta(tz=True)]
#: A probability-like number in [0, 1].
UnitInterval = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
#: A number >= 0.
NonNegative = Annotated[float, msgspec.Meta(ge=0.0)]
#: Optional free text from a client (e.g. a browser's User-Agent).
UserAgent = Annotated[str, msgspec.Meta(max_length=512)]


class Message(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Base of every contract message (configuration is inherited by subclasses)."""


class Event(Message, frozen=True):
    """Base of events and labels: a unique id and when it happened (or became known)."""

    event_id: Id
    event_time: Timestamp
