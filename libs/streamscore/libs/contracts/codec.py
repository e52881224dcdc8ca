"""Decode bytes into contract messages (the hot path) and encode them back.

:func:`decode` raises only :class:`ContractError`, whatever the bytes, with a
reason from :data:`~streamscore.libs.contracts.errors.REASONS`:

1. ``oversize``: checked first, from the length alone, before any parsing.
2. The msgspec decoder (cached per type) parses and validates in one pass.
3. Only on failure: the bytes are checked for UTF-8 (``not_utf8`` wins over any
   other reason), then msgspec's message is classified (``not_json``,
   ``missing_field``, ``wrong_type``, ``extra_field``, ``constraint`` ...).

No JSON Schema validator runs here; ``tests/contract`` proves that the Structs
accept exactly what the schema files accept.

>>> msg = decode("events.transactions", b'{"event_id": "e1", "event_time": '
...     b'"2026-01-01T00:00:00Z", "customer_id": "c1", "terminal_id": "t1", "amount": 3}',
...     max_bytes=1024)
>>> (msg.amount, msg.currency)
(3.0, 'EUR')
>>> decode(type(msg), encode(msg), max_bytes=1024) == msg
True
>>> try:
...     decode("events.transactions", b'{"amount": -1}', max_bytes=1024)
... except ContractError as e:
...     print(e.reason, e.field, e.schema)
constraint $.amount transaction/1
"""

from __future__ import annotations

from functools import cache
from typing import Final, TypeVar, overload

import msgspec

from streamscore.libs.contracts.base import Message
from streamscore.libs.contracts.errors import (
    NOT_JSON,
    NOT_UTF8,
    OVERSIZE,
    UNKNOWN_SCHEMA,
    ContractError,
    classify,
)
from streamscore.libs.contracts.registry import UnknownContractError, contract_for

__all__ = ["ContractError", "decode", "decoder_for", "encode", "schema_id_of"]

M = TypeVar("M", bound=Message)

_ENCODER: Final = msgspec.json.Encoder()


@cache
def decoder_for(message_type: type[M]) -> msgspec.json.Decoder[M]:
    """The cached msgspec decoder of one message type."""
    return msgspec.json.Decoder(message_type)


@cache
def schema_id_of(message_type: type[Message]) -> str | None:
    """``"transaction/1"`` for a registered type, ``None`` otherwise."""
    try:
        return contract_for(message_type).schema_id
    except UnknownContractError:
        return None


@overload
def decode(type_or_topic: type[M], data: bytes, *, max_bytes: int) -> M: ...
@overload
def decode(type_or_topic: str, data: bytes, *, max_bytes: int) -> Message: ...
def decode(type_or_topic: type[M] | str, data: bytes, *, max_bytes: int) -> M | Message:
    """Decode and validate one message; raise :class:`ContractError` if it breaks its contract.

    ``type_or_topic`` is a message type or anything :func:`contract_for` accepts (a
    topic such as ``"events.transactions"``, a schema name or id). An unknown name
    raises ``ContractError("unknown_schema")``.
    """
    message_type: type[Message]
    if isinstance(type_or_topic, str):
        try:
            message_type = contract_for(type_or_topic).type
        except UnknownContractError as exc:
            raise ContractError(UNKNOWN_SCHEMA, str(exc)) from None
    else:
        message_type = type_or_topic
    size = len(data)
    if size > max_bytes:
        raise ContractError(
            OVERSIZE,
            f"{size} bytes > limit {max_bytes}",
            schema=schema_id_of(message_type),
        )
    try:
        message: Message = decoder_for(message_type).decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError, ValueError) as exc:
        raise _refusal(exc, data, message_type) from None
    return message


def _refusal(exc: Exception, data: bytes, message_type: type[Message]) -> ContractError:
    schema = schema_id_of(message_type)
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as bad:
        return ContractError(
            NOT_UTF8, f"invalid UTF-8: {bad.reason} at byte {bad.start}", schema=schema
        )
    message = str(exc)
    if isinstance(exc, msgspec.ValidationError):
        reason, field = classify(message)
        return ContractError(reason, message, field=field, schema=schema)
    return ContractError(NOT_JSON, message or type(exc).__name__, schema=schema)


def encode(message: Message) -> bytes:
    """The JSON bytes of a message (UTC datetimes end in ``Z``)."""
    return _ENCODER.encode(message)
