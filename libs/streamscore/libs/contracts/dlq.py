"""Dead-letter records: what ``dlq.<topic>`` carries and the Kafka headers saying why.

A DLQ record keeps the original value and key bytes untouched; the reason, the
origin (topic, partition, offset, timestamp) and the time of failure travel as
Kafka headers named by the ``HEADER_*`` constants. Pure: no Kafka import.

>>> from datetime import datetime, timezone
>>> err = ContractError("constraint", "Expected `float` >= 0.0", field="$.amount",
...                     schema="transaction/1")
>>> hs = build_dlq_headers(err, source_topic="events.transactions", source_partition=2,
...     source_offset=41, source_timestamp_ms=None, service="features",
...     failed_at=datetime(2026, 1, 1, tzinfo=timezone.utc))
>>> hs[0]
('dlq.reason', b'constraint')
>>> parse_dlq_headers(hs).field
'$.amount'
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Annotated, Final

import msgspec

from streamscore.libs.contracts.base import Message, Timestamp
from streamscore.libs.contracts.errors import (
    MISSING_FIELD,
    NOT_UTF8,
    ContractError,
    Reason,
    classify,
)

HEADER_PREFIX: Final = "dlq."
HEADER_REASON: Final = "dlq.reason"
HEADER_DETAIL: Final = "dlq.detail"
HEADER_FIELD: Final = "dlq.field"
HEADER_SOURCE_TOPIC: Final = "dlq.source.topic"
HEADER_SOURCE_PARTITION: Final = "dlq.source.partition"
HEADER_SOURCE_OFFSET: Final = "dlq.source.offset"
HEADER_SOURCE_TIMESTAMP_MS: Final = "dlq.source.timestamp_ms"
HEADER_FAILED_AT: Final = "dlq.failed_at"
HEADER_SERVICE: Final = "dlq.service"
HEADER_SCHEMA: Final = "dlq.schema"

#: DlqHeaders field -> Kafka header name (a header is omitted when its value is null).
HEADER_NAMES: Final[dict[str, str]] = {
    "reason": HEADER_REASON,
    "detail": HEADER_DETAIL,
    "field": HEADER_FIELD,
    "source_topic": HEADER_SOURCE_TOPIC,
    "source_partition": HEADER_SOURCE_PARTITION,
    "source_offset": HEADER_SOURCE_OFFSET,
    "source_timestamp_ms": HEADER_SOURCE_TIMESTAMP_MS,
    "failed_at": HEADER_FAILED_AT,
    "service": HEADER_SERVICE,
    "schema": HEADER_SCHEMA,
}
#: Fields that are never null, so their header is always present.
REQUIRED_HEADERS: Final = (
    "reason",
    "detail",
    "source_topic",
    "source_partition",
    "source_offset",
    "failed_at",
    "service",
)
MAX_DETAIL_LENGTH: Final = 4096
MAX_FIELD_LENGTH: Final = 1024
MAX_INT32: Final = 2**31 - 1
MAX_INT64: Final = 2**63 - 1
DLQ_SCHEMA_ID: Final = "dlq_record/1"

Offset = Annotated[int, msgspec.Meta(ge=0, le=MAX_INT64)]


class DlqHeaders(Message, frozen=True):
    """Why a record was dead-lettered and where it came from."""

    reason: Reason
    detail: Annotated[str, msgspec.Meta(max_length=MAX_DETAIL_LENGTH)]
    #: JSON path of the offending field (``"$.amount"``), ``None`` for the whole message.
    field: Annotated[str, msgspec.Meta(max_length=MAX_FIELD_LENGTH)] | None
    source_topic: Annotated[str, msgspec.Meta(min_length=1, max_length=249)]
    source_partition: Annotated[int, msgspec.Meta(ge=0, le=MAX_INT32)]
    source_offset: Offset
    source_timestamp_ms: Offset | None
    failed_at: Timestamp
    service: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
    #: Contract the message was decoded against (``"transaction/1"``), if known.
    schema: Annotated[str, msgspec.Meta(max_length=128)] | None


class DlqRecord(Message, frozen=True):
    """The JSON form of a DLQ record: original value and key (base64) plus the headers."""

    value: bytes
    key: bytes | None
    headers: DlqHeaders


def build_dlq_headers(
    error: ContractError,
    *,
    source_topic: str,
    source_partition: int,
    source_offset: int,
    source_timestamp_ms: int | None,
    service: str,
    failed_at: datetime,
) -> list[tuple[str, bytes]]:
    """Kafka headers (name, UTF-8 bytes) for a message refused with ``error``.

    Detail and field are cut to :data:`MAX_DETAIL_LENGTH` and :data:`MAX_FIELD_LENGTH`
    characters (an unknown field's name can be arbitrarily long); null values are omitted.
    """
    headers = DlqHeaders(
        reason=error.reason,
        detail=error.detail[:MAX_DETAIL_LENGTH],
        field=None if error.field is None else error.field[:MAX_FIELD_LENGTH],
        source_topic=source_topic,
        source_partition=source_partition,
        source_offset=source_offset,
        source_timestamp_ms=source_timestamp_ms,
        failed_at=failed_at,
        service=service,
        schema=error.schema,
    )
    return headers_to_kafka(headers)


def headers_to_kafka(headers: DlqHeaders) -> list[tuple[str, bytes]]:
    """The Kafka header list of ``headers`` (strings UTF-8, ints decimal, times RFC 3339)."""
    out: list[tuple[str, bytes]] = []
    for name, header in HEADER_NAMES.items():
        value = getattr(headers, name)
        if value is None:
            continue
        text = value.isoformat() if isinstance(value, datetime) else str(value)
        out.append((header, text.encode("utf-8")))
    return out


def parse_dlq_headers(headers: Iterable[tuple[str, bytes | None]]) -> DlqHeaders:
    """Read back :func:`build_dlq_headers`' output; other headers are ignored.

    Raises :class:`ContractError` when a header is missing, not UTF-8 or invalid.
    """
    by_header = {header: name for name, header in HEADER_NAMES.items()}
    raw: dict[str, str | None] = dict.fromkeys(HEADER_NAMES)
    for header, value in headers:
        name = by_header.get(header)
        if name is None or value is None:
            continue
        try:
            raw[name] = value.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ContractError(
                NOT_UTF8, f"header {header}: {exc}", field=f"$.{name}", schema=DLQ_SCHEMA_ID
            ) from None
    for name in REQUIRED_HEADERS:
        if raw[name] is None:  # say which header is missing, not "got null"
            raise ContractError(
                MISSING_FIELD,
                f"header {HEADER_NAMES[name]} missing",
                field=f"$.{name}",
                schema=DLQ_SCHEMA_ID,
            )
    try:
        return msgspec.convert(raw, DlqHeaders, strict=False)
    except msgspec.ValidationError as exc:
        reason, field = classify(str(exc))
        raise ContractError(reason, str(exc), field=field, schema=DLQ_SCHEMA_ID) from None
