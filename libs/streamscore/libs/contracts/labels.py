"""Delayed labels (``schemas/labels/*``).

A label is itself an event: ``event_id`` is unique per label and ``event_time``
is when the label became known (not when the labelled event happened).
``target_event_id`` is the ``event_id`` of the labelled event.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from streamscore.libs.contracts.base import Event, Id, NonNegative, Timestamp

ChargebackStatus = Literal["reported", "reversed"]


class Chargeback(Event, frozen=True):
    """A chargeback on a transaction, or its reversal (``labels.chargebacks``)."""

    target_event_id: Id
    customer_id: Id
    terminal_id: Id
    fraud: bool
    status: ChargebackStatus
    #: ``event_time`` of the transaction (version 2): where the label lands in
    #: the terminal's event-time windows; ``None`` when the issuer did not say.
    target_event_time: Timestamp | None = None


class AccountTakeover(Event, frozen=True):
    """A confirmed or cleared account takeover (``labels.account_takeovers``)."""

    account_id: Id
    confirmed: bool
    target_event_id: Id | None = None


class Failure(Event, frozen=True):
    """A machine failure from maintenance records (``labels.failures``)."""

    machine_id: Id
    failure_time: Timestamp
    failure_mode: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
    target_event_id: Id | None = None


class Conversion(Event, frozen=True):
    """Whether a web session converted (``labels.conversions``)."""

    user_id: Id
    session_id: Id
    converted: bool
    value: NonNegative | None = None
    target_event_id: Id | None = None
