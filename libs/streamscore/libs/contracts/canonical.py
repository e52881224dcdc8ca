"""A canonical form of the JSON Schema subset the contracts use.

Two spellings of one schema (``{"type": ["number", "null"], "minimum": 0}`` and
``{"anyOf": [{"type": "number", "minimum": 0}, {"type": "null"}]}``, as msgspec
writes it) normalise to the same value, so schemas can be compared with ``==``
and checked for compatibility type by type.

A canonical schema is ``{json type: {keyword: value}}``: the keywords that
constrain values of that type. ``enum``/``const`` become a sorted ``enum`` list
under each type; object keywords hold canonical sub-schemas. Annotations
(``title``, ``description``, ``$id`` ...) are dropped; ``default`` is kept under
the key :data:`DEFAULT`.

>>> canonical({"type": ["number", "null"], "minimum": 0})
{'number': {'minimum': 0}, 'null': {}}
>>> canonical({"anyOf": [{"enum": ["b", "a"]}, {"type": "null"}]})
{'string': {'enum': ['a', 'b']}, 'null': {}}
"""

from __future__ import annotations

import json
from typing import Any, Final

TYPES: Final = ("string", "number", "integer", "boolean", "array", "object", "null")
DEFAULT: Final = "$default"
ANNOTATIONS: Final = frozenset(
    {"$schema", "$id", "title", "description", "examples", "$comment", "deprecated"}
)
KEYWORDS: Final[dict[str, frozenset[str]]] = {
    "null": frozenset(),
    "boolean": frozenset(),
    "integer": frozenset({"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"}),
    "number": frozenset({"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"}),
    "string": frozenset({"minLength", "maxLength", "pattern", "format", "contentEncoding"}),
    "array": frozenset({"items", "minItems", "maxItems"}),
    "object": frozenset(
        {
            "properties",
            "required",
            "additionalProperties",
            "propertyNames",
            "minProperties",
            "maxProperties",
        }
    ),
}
_STRUCTURAL: Final = frozenset({"type", "enum", "const", "anyOf", "default", "$ref", "$defs"})
_SUPPORTED: Final = _STRUCTURAL | ANNOTATIONS | frozenset().union(*KEYWORDS.values())

Canonical = dict[str, dict[str, Any]]


class UnsupportedSchemaError(ValueError):
    """The schema uses a keyword outside the supported subset."""


def json_type(value: object) -> str:
    """The JSON type name of a decoded JSON value (``integer`` for whole ints)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _sort_key(value: object) -> str:
    return json.dumps(value, sort_keys=True)


def canonical(schema: dict[str, Any] | bool, root: dict[str, Any] | None = None) -> Canonical:
    """The canonical form of ``schema`` (local ``$ref`` resolved against ``root``)."""
    if schema is True:
        schema = {}
    if schema is False:
        return {}
    root = schema if root is None else root
    unknown = set(schema) - _SUPPORTED
    if unknown:
        raise UnsupportedSchemaError(f"unsupported keywords {sorted(unknown)}")
    if "$ref" in schema:
        return canonical(_resolve(schema["$ref"], root), root)
    if "anyOf" in schema:
        merged: Canonical = {}
        for branch in schema["anyOf"]:
            for t, kws in canonical(branch, root).items():
                if t in merged and merged[t] != kws:
                    raise UnsupportedSchemaError(f"two anyOf branches constrain {t!r}")
                merged[t] = kws
        return _with_default(merged, schema)
    declared = schema.get("type", list(TYPES))
    types = [declared] if isinstance(declared, str) else list(declared)
    values: list[Any] | None = None
    if "const" in schema:
        values = [schema["const"]]
    elif "enum" in schema:
        values = list(schema["enum"])
    out: Canonical = {}
    for t in TYPES:
        if t not in types:
            continue
        kws = {k: _sub(k, v, root) for k, v in schema.items() if k in KEYWORDS[t]}
        if values is not None:
            of_type = [
                v
                for v in values
                if json_type(v) == t or (t == "number" and json_type(v) == "integer")
            ]
            if not of_type:
                continue
            if t not in ("null", "boolean") or len(of_type) < (1 if t == "null" else 2):
                kws["enum"] = sorted(of_type, key=_sort_key)
        if t == "integer" and "number" in types and values is None:
            continue  # number already accepts every integer
        out[t] = kws
    return _with_default(out, schema)


def _with_default(out: Canonical, schema: dict[str, Any]) -> Canonical:
    if "default" in schema:
        out[DEFAULT] = {"value": schema["default"]}
    return out


def _sub(keyword: str, value: Any, root: dict[str, Any]) -> Any:
    if keyword == "properties":
        return {name: canonical(s, root) for name, s in value.items()}
    if keyword == "required":
        return sorted(value)
    if keyword in ("items", "additionalProperties"):
        return False if value is False else canonical(value, root)
    if keyword == "propertyNames":
        names = canonical(value, root).get("string", {})
        return {"string": names}
    return value


def _resolve(ref: str, root: dict[str, Any]) -> dict[str, Any]:
    if not ref.startswith("#/"):
        raise UnsupportedSchemaError(f"only local $ref are supported, not {ref!r}")
    node: Any = root
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    if not isinstance(node, dict):
        raise UnsupportedSchemaError(f"$ref {ref!r} is not a schema")
    return node
