"""Every bytes input either decodes or raises ContractError with the right reason and field."""

from __future__ import annotations

import json
import pickle
import random
from datetime import UTC, datetime
from typing import Any

import pytest

from streamscore.libs.contracts import codec
from streamscore.libs.contracts.codec import decode, encode
from streamscore.libs.contracts.decisions import TransactionDecision
from streamscore.libs.contracts.errors import REASONS, ContractError
from streamscore.libs.contracts.events import Transaction
from streamscore.libs.contracts.registry import CONTRACTS
from streamscore.libs.contracts.samples import sample_messages

MAX = 1024 * 1024
TOPIC = "events.transactions"
VALID: dict[str, Any] = {
    "event_id": "tx-1",
    "event_time": "2026-01-01T00:00:00Z",
    "customer_id": "cust-1",
    "terminal_id": "term-1",
    "amount": 12.5,
}


def _raw(**changes: Any) -> bytes:
    doc = {**VALID, **changes}
    return json.dumps({k: v for k, v in doc.items() if v is not ...}).encode()


def refusal(data: bytes, target: Any = TOPIC, max_bytes: int = MAX) -> ContractError:
    with pytest.raises(ContractError) as info:
        decode(target, data, max_bytes=max_bytes)
    error = info.value
    assert error.reason in REASONS
    return error


def test_valid_message_decodes() -> None:
    message = decode(TOPIC, _raw(), max_bytes=MAX)
    assert isinstance(message, Transaction)
    assert (message.currency, message.channel) == ("EUR", "pos")
    assert message.event_time == datetime(2026, 1, 1, tzinfo=UTC)


CASES: list[tuple[str, bytes, str, str | None]] = [
    ("empty", b"", "not_json", None),
    ("garbage", b"hello", "not_json", None),
    ("truncated", _raw()[:-1], "not_json", None),
    ("trailing", _raw() + b" x", "not_json", None),
    ("bom", b"\xef\xbb\xbf" + _raw(), "not_json", None),
    ("nan", _raw().replace(b"12.5", b"NaN"), "not_json", None),
    ("infinity", _raw().replace(b"12.5", b"Infinity"), "not_json", None),
    ("minus infinity", _raw().replace(b"12.5", b"-Infinity"), "not_json", None),
    ("not utf-8", _raw(customer_id="\x00").replace(b"\\u0000", b"\xff\xfe"), "not_utf8", None),
    ("not utf-8 wins", _raw(customer_id=...).replace(b"tx-1", b"tx-\xc3"), "not_utf8", None),
    ("array", b"[1, 2]", "wrong_type", "$"),
    ("string amount", _raw(amount="12"), "wrong_type", "$.amount"),
    ("bool amount", _raw(amount=True), "wrong_type", "$.amount"),
    ("null id", _raw(customer_id=None), "wrong_type", "$.customer_id"),
    ("missing id", _raw(customer_id=...), "missing_field", "$.customer_id"),
    ("missing time", _raw(event_time=...), "missing_field", "$.event_time"),
    ("extra field", _raw(amout=3), "extra_field", "$.amout"),
    ("odd extra field", _raw(**{"a b": 1}), "extra_field", "$['a b']"),
    ("negative amount", _raw(amount=-1), "constraint", "$.amount"),
    ("huge amount", _raw(amount=1e9 + 1), "constraint", "$.amount"),
    ("overflow", _raw().replace(b"12.5", b"1e400"), "constraint", "$.amount"),
    ("bad currency", _raw(currency="eur"), "constraint", "$.currency"),
    ("currency newline", _raw(currency="EUR\n"), "constraint", "$.currency"),
    ("bad channel", _raw(channel="moto"), "constraint", "$.channel"),
    ("empty id", _raw(customer_id=""), "constraint", "$.customer_id"),
    ("long id", _raw(customer_id="c" * 129), "constraint", "$.customer_id"),
    ("no timezone", _raw(event_time="2026-01-01T00:00:00"), "constraint", "$.event_time"),
    ("date only", _raw(event_time="2026-01-01"), "constraint", "$.event_time"),
    ("bad date", _raw(event_time="2026-02-30T00:00:00Z"), "constraint", "$.event_time"),
    (
        "deep in field",
        b'{"event_id": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        "wrong_type",
        "$.event_id",
    ),
    ("deep top", b"[" * 1_000_000, "wrong_type", "$"),
    (
        "deep extra",
        _raw()[:-1] + b', "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        "extra_field",
        "$.x",
    ),
]


@pytest.mark.parametrize(
    ("data", "reason", "field"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_input_is_classified(data: bytes, reason: str, field: str | None) -> None:
    error = refusal(data)
    assert (error.reason, error.field) == (reason, field), error
    assert error.schema == "transaction/1"
    assert error.detail


def test_nested_errors_name_the_nested_field() -> None:
    decision = next(iter(sample_messages("transaction_decision", 1, seed=1)))
    doc = json.loads(encode(decision))
    doc["reasons"] = [{"code": "velocity"}]
    error = refusal(json.dumps(doc).encode(), TransactionDecision)
    assert (error.reason, error.field) == ("missing_field", "$.reasons[0].weight")
    doc["reasons"] = [{"code": "velocity", "weight": 1, "extra": 1}]
    error = refusal(json.dumps(doc).encode(), TransactionDecision)
    assert (error.reason, error.field) == ("extra_field", "$.reasons[0].extra")
    doc["reasons"] = []
    doc["feature_statuses"] = {"customer": "MAYBE"}
    error = refusal(json.dumps(doc).encode(), TransactionDecision)
    assert (error.reason, error.field) == ("constraint", "$.feature_statuses.*")
    doc["feature_statuses"] = {"": "PRESENT"}
    error = refusal(json.dumps(doc).encode(), TransactionDecision)
    assert (error.reason, error.field) == ("constraint", "$.feature_statuses")


def test_oversize_is_refused_before_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_parsing(_type: object) -> None:
        raise AssertionError("parsed an oversize message")

    monkeypatch.setattr(codec, "decoder_for", no_parsing)
    huge = b"\xff" * (MAX + 1)  # would be not_utf8 if it were looked at
    error = refusal(huge)
    assert (error.reason, error.field) == ("oversize", None)
    assert str(MAX) in error.detail
    assert refusal(_raw(), max_bytes=10).reason == "oversize"


def test_unknown_topic_is_unknown_schema() -> None:
    assert refusal(_raw(), "events.nope").reason == "unknown_schema"


def test_contract_error_pickles() -> None:
    error = refusal(_raw(amount=-1))
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.reason, copy.field, copy.detail, copy.schema) == (
        error.reason,
        error.field,
        error.detail,
        error.schema,
    )


def _decode_or_refuse(target: Any, data: bytes) -> None:
    try:
        message = decode(target, data, max_bytes=MAX)
    except ContractError as error:
        assert error.reason in REASONS
        return
    data.decode("utf-8")  # success implies valid UTF-8
    assert decode(target, encode(message), max_bytes=MAX) == message


def test_fuzz_random_bytes() -> None:
    rng = random.Random(1)
    alphabet = b'{}[]":,.-+0123456789eEtrufalsn \\\xff\xc3\x80'
    for _ in range(3000):
        size = rng.randrange(64)
        data = rng.randbytes(size) if rng.random() < 0.5 else bytes(rng.choices(alphabet, k=size))
        _decode_or_refuse(rng.choice(CONTRACTS).type, data)


@pytest.mark.parametrize("contract", CONTRACTS, ids=[c.name for c in CONTRACTS])
def test_fuzz_mutated_valid_messages(contract: Any) -> None:
    rng = random.Random(contract.name)
    for message in sample_messages(contract.name, 60, seed=2):
        raw = bytearray(encode(message))
        for _ in range(10):
            mutant = bytearray(raw)
            for _ in range(rng.randrange(1, 4)):
                op, at = rng.randrange(3), rng.randrange(len(mutant))
                if op == 0:
                    mutant[at] = rng.randrange(256)
                elif op == 1:
                    del mutant[at]
                else:
                    mutant.insert(at, rng.randrange(256))
            _decode_or_refuse(contract.type, bytes(mutant))
        for cut in range(0, len(raw), 7):
            assert refusal(bytes(raw[:cut]), contract.type).reason == "not_json"
