"""DLQ headers: built from a ContractError and source metadata, parsed back unchanged."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from streamscore.libs.contracts import dlq
from streamscore.libs.contracts.codec import decode, encode
from streamscore.libs.contracts.dlq import (
    HEADER_NAMES,
    DlqHeaders,
    DlqRecord,
    build_dlq_headers,
    parse_dlq_headers,
)
from streamscore.libs.contracts.errors import REASONS, ContractError
from streamscore.libs.contracts.registry import dlq_topic

FAILED_AT = datetime(2026, 3, 1, 12, 30, 15, 123456, tzinfo=UTC)
SOURCE = {
    "source_topic": "events.transactions",
    "source_partition": 3,
    "source_offset": 2**40,
    "source_timestamp_ms": 1_767_225_600_000,
    "service": "features",
    "failed_at": FAILED_AT,
}


def _refusal() -> ContractError:
    with pytest.raises(ContractError) as info:
        decode("events.transactions", b'{"amount": "x"}', max_bytes=1024)
    return info.value


def test_round_trip_keeps_every_value() -> None:
    error = _refusal()
    headers = build_dlq_headers(error, **SOURCE)
    assert all(isinstance(v, bytes) for _, v in headers)
    assert {name for name, _ in headers} == set(HEADER_NAMES.values())
    parsed = parse_dlq_headers(headers)
    assert parsed == DlqHeaders(
        reason=error.reason,
        detail=error.detail,
        field=error.field,
        schema="transaction/1",
        **SOURCE,
    )
    assert (parsed.reason, parsed.field) == ("wrong_type", "$.amount")


@pytest.mark.parametrize("reason", REASONS)
def test_round_trip_with_nulls_and_every_reason(reason: str) -> None:
    error = ContractError(reason, "détail ✓\nnext line")
    source = {**SOURCE, "source_timestamp_ms": None}
    source["failed_at"] = FAILED_AT.astimezone(timezone(timedelta(hours=2)))
    headers = build_dlq_headers(error, **source)
    names = {name for name, _ in headers}
    assert dlq.HEADER_FIELD not in names and dlq.HEADER_SCHEMA not in names
    parsed = parse_dlq_headers([*headers, ("traceparent", b"00-abc"), ("other", None)])
    assert (parsed.reason, parsed.detail, parsed.field, parsed.schema) == (
        reason,
        "détail ✓\nnext line",
        None,
        None,
    )
    assert parsed.source_timestamp_ms is None and parsed.failed_at == FAILED_AT


def test_long_detail_and_field_are_cut_to_fit() -> None:
    error = ContractError("extra_field", "d" * 10_000, field="$." + "f" * 5000)
    parsed = parse_dlq_headers(build_dlq_headers(error, **SOURCE))
    assert len(parsed.detail) == dlq.MAX_DETAIL_LENGTH
    assert parsed.field is not None and len(parsed.field) == dlq.MAX_FIELD_LENGTH


def test_header_names_are_the_constants() -> None:
    assert dlq.HEADER_REASON == "dlq.reason" and dlq.HEADER_SOURCE_OFFSET == "dlq.source.offset"
    assert all(name.startswith(dlq.HEADER_PREFIX) for name in HEADER_NAMES.values())
    assert set(HEADER_NAMES) == set(DlqHeaders.__struct_fields__)


@pytest.mark.parametrize(
    ("header", "value", "reason"),
    [
        (dlq.HEADER_REASON, None, "missing_field"),
        (dlq.HEADER_SOURCE_OFFSET, None, "missing_field"),
        (dlq.HEADER_SOURCE_OFFSET, b"-1", "constraint"),
        (dlq.HEADER_SOURCE_PARTITION, b"three", "wrong_type"),
        (dlq.HEADER_REASON, b"because", "constraint"),
        (dlq.HEADER_FAILED_AT, b"yesterday", "constraint"),
        (dlq.HEADER_SERVICE, b"\xff", "not_utf8"),
    ],
)
def test_invalid_headers_raise_contract_error(
    header: str, value: bytes | None, reason: str
) -> None:
    headers = build_dlq_headers(_refusal(), **SOURCE)
    changed = [(n, v) for n, v in headers if n != header]
    if value is not None:
        changed.append((header, value))
    with pytest.raises(ContractError) as info:
        parse_dlq_headers(changed)
    assert info.value.reason == reason
    assert info.value.field == f"$.{next(k for k, v in HEADER_NAMES.items() if v == header)}"


def test_dlq_record_json_form(validators: dict[str, object]) -> None:
    headers = parse_dlq_headers(build_dlq_headers(_refusal(), **SOURCE))
    record = DlqRecord(value=b'{"amount": "x"}\xff', key=None, headers=headers)
    raw = encode(record)
    doc = json.loads(raw)
    assert doc["value"] == "eyJhbW91bnQiOiAieCJ9/w==" and doc["key"] is None
    assert validators["dlq_record"].is_valid(doc)
    assert decode(DlqRecord, raw, max_bytes=1 << 20) == record


def test_dlq_topic_names() -> None:
    assert dlq_topic("events.transactions") == "dlq.events.transactions"
