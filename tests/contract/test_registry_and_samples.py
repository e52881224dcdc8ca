"""The registry table and the sample generator."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from streamscore.libs.contracts.base import Event
from streamscore.libs.contracts.codec import decode, encode
from streamscore.libs.contracts.registry import (
    CONTRACTS,
    SCHEMAS_DIR_ENV,
    UnknownContractError,
    contract_for,
    load_schema,
    schema_path,
    schemas_dir,
)
from streamscore.libs.contracts.samples import sample_events, sample_messages
from streamscore.libs.topics import STREAMS

TOPICS = {
    "events.transactions": "Transaction",
    "events.logins": "Login",
    "events.sensor_readings": "SensorReading",
    "events.clickstream": "Click",
    "decisions.transactions": "TransactionDecision",
    "decisions.logins": "LoginDecision",
    "decisions.sensors": "SensorDecision",
    "decisions.clickstream": "ClickDecision",
    "labels.chargebacks": "Chargeback",
    "labels.account_takeovers": "AccountTakeover",
    "labels.failures": "Failure",
    "labels.conversions": "Conversion",
}


@pytest.mark.parametrize(("topic", "type_name"), TOPICS.items())
def test_topics_map_to_types(topic: str, type_name: str) -> None:
    contract = contract_for(topic)
    assert contract.type.__name__ == type_name
    assert contract_for(contract.type) is contract is contract_for(contract.schema_id)
    assert schema_path(contract).is_file()


def test_every_stream_topic_has_a_contract() -> None:
    for stream in STREAMS.values():
        for topic in (stream.input_topic, stream.decision_topic, stream.label_topic):
            assert contract_for(topic).stream == stream.name
    assert len({c.name for c in CONTRACTS}) == len(CONTRACTS)


def test_unknown_key_raises() -> None:
    with pytest.raises(UnknownContractError):
        contract_for("events.nope")


def test_decision_stream_field_matches_the_registry() -> None:
    for contract in CONTRACTS:
        if contract.kind == "decisions":
            assert load_schema(contract)["properties"]["stream"]["const"] == contract.stream


def test_schemas_dir_is_found_and_overridable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert (schemas_dir() / "README.md").is_file()
    monkeypatch.setenv(SCHEMAS_DIR_ENV, str(tmp_path))
    assert schemas_dir() == tmp_path
    assert schema_path(contract_for("login")) == tmp_path / "events" / "login" / "v1.json"


@pytest.mark.parametrize("stream", list(STREAMS))
def test_sample_events_are_deterministic_valid_and_reuse_keys(stream: str) -> None:
    events = list(sample_events(stream, 300, seed=42))
    assert [encode(e) for e in events] == [encode(e) for e in sample_events(stream, 300, seed=42)]
    assert [encode(e) for e in events[:50]] == [encode(e) for e in sample_events(stream, 50, 42)]
    assert [encode(e) for e in events] != [encode(e) for e in sample_events(stream, 300, seed=43)]
    contract = contract_for(STREAMS[stream].input_topic)
    assert all(isinstance(e, Event) and type(e) is contract.type for e in events)
    assert len({e.event_id for e in events}) == len(events)
    times = [e.event_time for e in events]
    assert times == sorted(times)
    keys = [getattr(e, STREAMS[stream].key_field) for e in events]
    assert len(set(keys)) < len(keys) // 2  # keys repeat: per-key ordering is testable
    for event in events[:20]:
        assert decode(contract.topic or "", encode(event), max_bytes=1 << 20) == event


def test_sample_messages_cover_nullable_fields() -> None:
    docs = [json.loads(encode(m)) for m in sample_messages("click", 200, seed=1)]
    assert {d["user_agent"] is None for d in docs} == {True, False}
    assert {d["value"] is None for d in docs} == {True, False}
