"""Input events of the four streams (``schemas/events/*``).

>>> from datetime import datetime, timezone
>>> t = Transaction(event_id="e1", event_time=datetime(2026, 1, 1, tzinfo=timezone.utc),
...                 customer_id="c1", terminal_id="t1", amount=12.5)
>>> (t.currency, t.channel)
('EUR', 'pos')
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from streamscore.libs.contracts.base import Event, Id, NonNegative, UserAgent

Channel = Literal["pos", "ecommerce", "atm"]
AuthMethod = Literal["password", "sso", "otp", "passkey"]
SensorType = Literal["vibration", "temperature", "pressure"]
ClickAction = Literal["page_view", "search", "add_to_cart", "purchase"]

MAX_AMOUNT = 1e9


class Transaction(Event, frozen=True):
    """A card payment by a customer at a terminal (``events.transactions``)."""

    customer_id: Id
    terminal_id: Id
    amount: Annotated[float, msgspec.Meta(ge=0.0, le=MAX_AMOUNT)]
    currency: Annotated[str, msgspec.Meta(pattern="^[A-Z]{3}$", min_length=3, max_length=3)] = "EUR"
    channel: Channel = "pos"


class Login(Event, frozen=True):
    """A login attempt on an account (``events.logins``)."""

    account_id: Id
    device_id: Id
    ip: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    country: Annotated[str, msgspec.Meta(pattern="^[A-Z]{2}$", min_length=2, max_length=2)]
    success: bool
    auth_method: AuthMethod = "password"
    user_agent: UserAgent | None = None


class SensorReading(Event, frozen=True):
    """One reading of one sensor on a machine (``events.sensor_readings``).

    ``value`` is ``None`` when the sensor reported no reading.
    """

    machine_id: Id
    sensor_id: Id
    machine_type: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
    sensor_type: SensorType
    value: float | None
    unit: Annotated[str, msgspec.Meta(max_length=32)] | None = None


class Click(Event, frozen=True):
    """One action of a user in a web session (``events.clickstream``)."""

    user_id: Id
    session_id: Id
    action: ClickAction
    page: Annotated[str, msgspec.Meta(max_length=2048)]
    value: NonNegative | None = None
    user_agent: UserAgent | None = None
