"""The Structs and the schema files agree: structurally, and message by message."""

from __future__ import annotations

import json
import random
from typing import Any

import msgspec
import pytest

from streamscore.libs.contracts.canonical import canonical
from streamscore.libs.contracts.codec import decode, encode
from streamscore.libs.contracts.errors import ContractError
from streamscore.libs.contracts.registry import (
    CONTRACTS,
    Contract,
    load_schema,
    schema_path,
    schema_versions,
    schemas_dir,
)
from streamscore.libs.contracts.samples import sample_messages

MAX = 1024 * 1024
IDS = [c.name for c in CONTRACTS]
B64_PATTERN_KEY = "pattern"


def _struct_schema(contract: Contract) -> dict[str, Any]:
    """msgspec's schema of the Struct, with the base64 pattern the files add to bytes."""
    schema = msgspec.json.schema(contract.type)

    def add_pattern(node: Any, pattern: str) -> None:
        if isinstance(node, dict):
            if node.get("contentEncoding") == "base64":
                node[B64_PATTERN_KEY] = pattern
            for value in node.values():
                add_pattern(value, pattern)
        elif isinstance(node, list):
            for value in node:
                add_pattern(value, pattern)

    file_pattern = load_schema(CONTRACTS[-1])["properties"]["value"]["pattern"]
    add_pattern(schema, file_pattern)
    return schema


def _walk_objects(node: Any, path: str = "$") -> list[tuple[str, dict[str, Any]]]:
    found: list[tuple[str, dict[str, Any]]] = []
    if isinstance(node, dict):
        if node.get("type") == "object":
            found.append((path, node))
        for key, value in node.items():
            found += _walk_objects(value, f"{path}/{key}")
    return found


@pytest.mark.parametrize("contract", CONTRACTS, ids=IDS)
def test_struct_mirrors_latest_schema_file(contract: Contract) -> None:
    file_schema = load_schema(contract)
    assert canonical(_struct_schema(contract)) == canonical(file_schema)


@pytest.mark.parametrize("contract", CONTRACTS, ids=IDS)
def test_field_names_and_required_sets(contract: Contract) -> None:
    file_schema = load_schema(contract)
    fields = msgspec.structs.fields(contract.type)
    assert {f.encode_name for f in fields} == set(file_schema["properties"])
    required = {f.encode_name for f in fields if f.required}
    assert required == set(file_schema["required"])


@pytest.mark.parametrize("contract", CONTRACTS, ids=IDS)
def test_registry_version_is_the_latest_file(contract: Contract) -> None:
    path = schema_path(contract)
    assert schema_versions(path.parent)[-1] == contract.version
    assert load_schema(contract)["$id"] == (
        f"urn:streamscore:{contract.kind}:{contract.name}:{contract.version}"
    )


def test_every_schema_file_is_registered() -> None:
    files = {
        p.relative_to(schemas_dir()).parent.as_posix() for p in schemas_dir().glob("*/*/v*.json")
    }
    assert files == {f"{c.kind}/{c.name}" for c in CONTRACTS}


@pytest.mark.parametrize("contract", CONTRACTS, ids=IDS)
def test_objects_are_closed_with_explicit_required(contract: Contract) -> None:
    for path, node in _walk_objects(load_schema(contract)):
        if "properties" in node:  # a record, not a map
            assert node.get("additionalProperties") is False, path
            assert "required" in node, path
        else:  # a map: bounded, with constrained keys
            assert "maxProperties" in node and "propertyNames" in node, path


# --- differential: jsonschema validity == msgspec decode success -------------------------

INTERESTING: list[Any] = [
    -1,
    -0.0001,
    0,
    0.5,
    1,
    1.0000001,
    2,
    1e9,
    1e9 + 1,
    2**31,
    2**63,
    1.5,
    "",
    "x",
    "a" * 129,
    "a" * 600,
    "EUR",
    "eur",
    "EURO",
    "E1R",
    "DE",
    "de",
    "YWJj",
    "YWJ",
    "2026-01-01T00:00:00",
    "2026-01-01",
    "2026-01-01T00:00:00+01:00",
    "2026-01-01T00:00:00.5Z",
    "2026-13-01T00:00:00Z",
    "not-a-date",
    "pos",
    "approve",
    "PRESENT",
    "constraint",
    True,
    False,
    None,
    [],
    {},
    [1],
    {"code": "x", "weight": None},
]


def _leaves(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [path] if path else []
    if isinstance(node, dict):
        for key, value in node.items():
            out += _leaves(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            out += _leaves(value, (*path, index))
    return out


def _containers(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [path] if isinstance(node, dict) else []
    if isinstance(node, dict):
        for key, value in node.items():
            out += _containers(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            out += _containers(value, (*path, index))
    return out


def _get(doc: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        doc = doc[part]
    return doc


def mutate(doc: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """One random mutation: drop, retype, add, or set an interesting value somewhere."""
    doc = json.loads(json.dumps(doc))
    kind = rng.choice(("drop", "set", "set", "add"))
    if kind == "add":
        target = _get(doc, rng.choice(_containers(doc)))
        target[rng.choice(("unexpected", "amout", "x"))] = rng.choice(INTERESTING)
        return doc
    path = rng.choice(_leaves(doc))
    parent = _get(doc, path[:-1])
    if kind == "drop" and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = rng.choice(INTERESTING)
    return doc


def _agree(contract: Contract, validator: Any, raw: bytes) -> None:
    schema_ok = validator.is_valid(json.loads(raw))
    try:
        decode(contract.type, raw, max_bytes=MAX)
        decoded_ok = True
    except ContractError:
        decoded_ok = False
    assert schema_ok == decoded_ok, (contract.name, raw)


@pytest.mark.parametrize("contract", CONTRACTS, ids=IDS)
def test_valid_samples_validate_and_round_trip(contract: Contract, validators: Any) -> None:
    for message in sample_messages(contract.name, 250, seed=11):
        raw = encode(message)
        assert validators[contract.name].is_valid(json.loads(raw)), raw
        assert decode(contract.type, raw, max_bytes=MAX) == message


@pytest.mark.parametrize("contract", CONTRACTS, ids=IDS)
def test_schema_and_decoder_agree_on_mutants(contract: Contract, validators: Any) -> None:
    rng = random.Random(contract.name)
    validator = validators[contract.name]
    outcomes = set()
    for message in sample_messages(contract.name, 120, seed=5):
        doc = json.loads(encode(message))
        for _ in range(6):
            mutant = mutate(doc, rng)
            for _ in range(rng.randrange(2)):
                mutant = mutate(mutant, rng)
            raw = json.dumps(mutant).encode()
            _agree(contract, validator, raw)
            outcomes.add(validator.is_valid(mutant))
    assert outcomes == {True, False}  # the mutants exercised both sides
