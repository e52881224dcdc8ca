"""Compatibility checks: the repository's schemas, and synthetic next versions."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from streamscore.libs.contracts import compat
from streamscore.libs.contracts.codec import encode
from streamscore.libs.contracts.compat import check_compatibility, check_repository
from streamscore.libs.contracts.registry import CONTRACTS, contract_for, load_schema, schemas_dir
from streamscore.libs.contracts.samples import sample_messages

Schema = dict[str, Any]


def _transaction() -> Schema:
    return copy.deepcopy(load_schema(contract_for("transaction")))


def _with(change: Callable[[Schema], None], base: Schema | None = None) -> Schema:
    schema = _transaction() if base is None else copy.deepcopy(base)
    change(schema)
    return schema


def _kinds(issues: list[compat.Incompatibility]) -> list[tuple[str, str]]:
    return [(i.kind, i.path) for i in issues]


def test_repository_is_backward_transitive() -> None:
    assert check_repository(schemas_dir()) == []


@pytest.mark.parametrize("contract", CONTRACTS, ids=[c.name for c in CONTRACTS])
def test_every_schema_is_fully_compatible_with_itself(contract: Any) -> None:
    schema = load_schema(contract)
    assert check_compatibility(schema, schema, "FULL") == []


def test_adding_an_optional_field_is_backward_but_not_forward(make_validator: Any) -> None:
    old = _transaction()
    new = _with(lambda s: s["properties"].update(mcc={"type": ["string", "null"], "default": None}))
    assert check_compatibility(old, new, "BACKWARD") == []
    forward = check_compatibility(old, new, "FORWARD")
    assert _kinds(forward) == [(compat.FIELD_NOT_ACCEPTED, "$.mcc")]
    assert "mcc" in forward[0].detail and forward[0].direction == "FORWARD"
    validator = make_validator(new)
    for message in sample_messages("transaction", 200, seed=3):
        assert validator.is_valid(json.loads(encode(message)))


NEXT_VERSIONS: dict[str, tuple[Callable[[Schema], None], str, str]] = {
    "required field added": (
        lambda s: (s["properties"].update(mcc={"type": "string"}), s["required"].append("mcc")),
        compat.FIELD_REQUIRED,
        "$.mcc",
    ),
    "optional field made required": (
        lambda s: s["required"].append("channel"),
        compat.FIELD_REQUIRED,
        "$.channel",
    ),
    "field removed": (
        lambda s: s["properties"].pop("channel"),
        compat.FIELD_NOT_ACCEPTED,
        "$.channel",
    ),
    "type changed": (
        lambda s: s["properties"]["amount"].update(type="string"),
        compat.TYPE_NARROWED,
        "$.amount",
    ),
    "number narrowed to integer": (
        lambda s: s["properties"]["amount"].update(type="integer"),
        compat.TYPE_NARROWED,
        "$.amount",
    ),
    "enum narrowed": (
        lambda s: s["properties"]["channel"].update(enum=["pos", "ecommerce"]),
        compat.ENUM_NARROWED,
        "$.channel",
    ),
    "maximum tightened": (
        lambda s: s["properties"]["amount"].update(maximum=1e6),
        compat.BOUND_TIGHTENED,
        "$.amount",
    ),
    "minimum made exclusive": (
        lambda s: s["properties"]["amount"].update(exclusiveMinimum=0),
        compat.BOUND_TIGHTENED,
        "$.amount",
    ),
    "maxLength tightened": (
        lambda s: s["properties"]["customer_id"].update(maxLength=64),
        compat.BOUND_TIGHTENED,
        "$.customer_id",
    ),
    "pattern changed": (
        lambda s: s["properties"]["currency"].update(pattern="^[A-Z]{3}$|^X$"),
        compat.PATTERN_CHANGED,
        "$.currency",
    ),
}


@pytest.mark.parametrize("name", list(NEXT_VERSIONS))
def test_breaking_next_version_is_flagged_backward(name: str) -> None:
    change, kind, path = NEXT_VERSIONS[name]
    issues = check_compatibility(_transaction(), _with(change), "BACKWARD")
    assert (kind, path) in _kinds(issues), issues
    field = path.removeprefix("$.")
    assert any(field in i.detail or field in i.path for i in issues)
    full = check_compatibility(_transaction(), _with(change), "FULL")
    assert {i.direction for i in full} >= {"BACKWARD"}


def test_widening_is_backward_compatible_and_forward_incompatible() -> None:
    dlq = load_schema(contract_for("dlq_record"))

    def widen(s: Schema) -> None:
        s["properties"]["headers"]["properties"]["source_partition"]["type"] = "number"

    new = _with(widen, dlq)
    assert check_compatibility(dlq, new, "BACKWARD") == []
    assert _kinds(check_compatibility(dlq, new, "FORWARD")) == [
        (compat.TYPE_NARROWED, "$.headers.source_partition")
    ]
    relaxed = _with(lambda s: s["properties"]["amount"].update(maximum=1e12))
    more_values = _with(lambda s: s["properties"]["channel"]["enum"].append("moto"))
    nullable = _with(lambda s: s["properties"]["customer_id"].update(type=["string", "null"]))
    for new_schema in (relaxed, more_values, nullable):
        assert check_compatibility(_transaction(), new_schema, "BACKWARD") == []
        assert check_compatibility(_transaction(), new_schema, "FORWARD") != []
        assert check_compatibility(_transaction(), new_schema, "FULL") != []


def test_nested_change_is_reported_with_its_path() -> None:
    decision = load_schema(contract_for("transaction_decision"))

    def tighten(s: Schema) -> None:
        s["properties"]["reasons"]["items"]["properties"]["code"]["maxLength"] = 8

    issues = check_compatibility(decision, _with(tighten, decision), "BACKWARD")
    assert _kinds(issues) == [(compat.BOUND_TIGHTENED, "$.reasons[*].code")]

    def narrow_map(s: Schema) -> None:
        s["properties"]["feature_statuses"]["additionalProperties"]["enum"] = ["PRESENT"]

    issues = check_compatibility(decision, _with(narrow_map, decision), "BACKWARD")
    assert _kinds(issues) == [(compat.ENUM_NARROWED, "$.feature_statuses.*")]


def test_forward_flags_what_old_readers_cannot_read() -> None:
    old = _transaction()
    removed = _with(lambda s: s["properties"].pop("channel"))
    assert check_compatibility(old, removed, "FORWARD") == []  # old readers never need it
    required = _with(lambda s: s["required"].append("channel"))
    assert check_compatibility(old, required, "FORWARD") == []


def _write(root: Path, version: int, schema: Schema) -> None:
    path = root / "events" / "transaction" / f"v{version}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(schema))


def test_repository_check_is_transitive(tmp_path: Path) -> None:
    v1 = _transaction()
    v2 = _with(lambda s: s["properties"]["channel"].update(enum=["pos", "ecommerce"]))
    v3 = copy.deepcopy(v2)  # compatible with v2, not with v1
    for version, schema in ((1, v1), (2, v2), (3, v3)):
        _write(tmp_path, version, schema)
    issues = check_repository(tmp_path)
    assert [i.subject for i in issues] == ["events/transaction v3 vs v1"]
    assert issues[0].kind == compat.ENUM_NARROWED
    assert "v3 vs v1" in str(issues[0])


def test_repository_check_accepts_a_compatible_history(tmp_path: Path) -> None:
    v1 = _transaction()
    v2 = _with(lambda s: s["properties"].update(mcc={"type": ["string", "null"], "default": None}))
    _write(tmp_path, 1, v1)
    _write(tmp_path, 2, v2)
    assert check_repository(tmp_path) == []
    assert len(check_repository(tmp_path, "FULL")) == 1
