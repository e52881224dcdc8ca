"""Schema compatibility: can a reader with one schema accept what a writer produced?

* ``BACKWARD``: the reader has the new schema, messages follow the old one.
* ``FORWARD``: the reader has the old schema, messages follow the new one.
* ``FULL``: both.

The project policy is BACKWARD transitive (``schemas/README.md``): the latest
version of a schema must read every message valid under every older version.
Because objects are closed (``additionalProperties: false``), removing a field
breaks BACKWARD and adding one breaks FORWARD.

>>> old = {"type": "object", "properties": {"a": {"type": "integer"}},
...        "required": ["a"], "additionalProperties": False}
>>> new = {**old, "properties": {"a": {"type": "number"}, "b": {"type": "string"}}}
>>> check_compatibility(old, new, "BACKWARD")
[]
>>> [i.kind for i in check_compatibility(old, new, "FORWARD")]
['type_narrowed', 'field_not_accepted']
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

from streamscore.libs.contracts.canonical import DEFAULT, Canonical, canonical
from streamscore.libs.contracts.errors import child_path
from streamscore.libs.contracts.registry import schema_versions

Mode = Literal["BACKWARD", "FORWARD", "FULL"]
Direction = Literal["BACKWARD", "FORWARD"]

TYPE_NARROWED: Final = "type_narrowed"
ENUM_NARROWED: Final = "enum_narrowed"
BOUND_TIGHTENED: Final = "bound_tightened"
PATTERN_CHANGED: Final = "pattern_changed"
FORMAT_CHANGED: Final = "format_changed"
FIELD_NOT_ACCEPTED: Final = "field_not_accepted"
FIELD_REQUIRED: Final = "field_required"
MAP_CLOSED: Final = "additional_properties_closed"

_LOWER: Final = ("minLength", "minItems", "minProperties")
_UPPER: Final = ("maxLength", "maxItems", "maxProperties")


@dataclass(frozen=True)
class Incompatibility:
    """One way in which a reader would reject a writer's valid message."""

    direction: Direction
    #: JSON path of the offending field (``"$.amount"``, ``"$.reasons[*].code"``).
    path: str
    kind: str
    detail: str
    #: Which schema and versions (set by :func:`check_repository`).
    subject: str = ""

    def __str__(self) -> str:
        where = f"{self.subject}: " if self.subject else ""
        return f"{where}{self.direction} {self.path}: {self.kind}: {self.detail}"


def check_compatibility(
    old_schema: dict[str, Any], new_schema: dict[str, Any], mode: Mode
) -> list[Incompatibility]:
    """Every incompatibility between two versions of a schema in ``mode`` (empty: compatible)."""
    old, new = canonical(old_schema), canonical(new_schema)
    out: list[Incompatibility] = []
    if mode in ("BACKWARD", "FULL"):
        _Check("BACKWARD", out).node(writer=old, reader=new, path="$")
    if mode in ("FORWARD", "FULL"):
        _Check("FORWARD", out).node(writer=new, reader=old, path="$")
    return out


def check_repository(schemas_dir: Path, mode: Mode = "BACKWARD") -> list[Incompatibility]:
    """Check, for every schema under ``schemas_dir/<kind>/<name>/``, the latest version
    against every older one (transitive)."""
    out: list[Incompatibility] = []
    for directory in sorted({p.parent for p in schemas_dir.glob("*/*/v*.json")}):
        versions = schema_versions(directory)
        latest = versions[-1]
        new = _read(directory / f"v{latest}.json")
        for version in versions[:-1]:
            old = _read(directory / f"v{version}.json")
            subject = f"{directory.relative_to(schemas_dir).as_posix()} v{latest} vs v{version}"
            for issue in check_compatibility(old, new, mode):
                out.append(Incompatibility(**{**issue.__dict__, "subject": subject}))
    return out


class _Check:
    """Walks a writer and a reader schema together, collecting incompatibilities."""

    def __init__(self, direction: Direction, out: list[Incompatibility]) -> None:
        self.direction: Direction = direction
        self.out = out

    def flag(self, path: str, kind: str, detail: str) -> None:
        self.out.append(Incompatibility(self.direction, path, kind, detail))

    def node(self, writer: Canonical, reader: Canonical, path: str) -> None:
        if writer == reader:  # identical schemas accept each other (also ends recursion)
            return
        for t, w in writer.items():
            if t == DEFAULT:
                continue
            r = reader.get(t)
            if r is None and t == "integer":
                r = reader.get("number")
            if r is None and t == "number" and "integer" in reader:
                self.flag(path, TYPE_NARROWED, "number narrowed to integer")
                continue
            if r is None:
                self.flag(path, TYPE_NARROWED, f"{t} values no longer accepted")
                continue
            if "enum" in w:
                self.enum_values(w, r, path)
            elif "enum" in r:
                self.flag(path, ENUM_NARROWED, f"{t}: enum {r['enum']} added")
            else:
                self.keywords(t, w, r, path)

    def enum_values(self, w: dict[str, Any], r: dict[str, Any], path: str) -> None:
        if "enum" in r:
            lost = [v for v in w["enum"] if v not in r["enum"]]
            if lost:
                self.flag(path, ENUM_NARROWED, f"enum values {lost} no longer accepted")
            return
        bounded = {
            k: v for k, v in r.items() if k in ("minimum", "maximum", "minLength", "maxLength")
        }
        for value in w["enum"]:
            if isinstance(value, int | float | str) and not _within(value, bounded):
                self.flag(path, BOUND_TIGHTENED, f"enum value {value!r} outside {bounded}")

    def keywords(self, t: str, w: dict[str, Any], r: dict[str, Any], path: str) -> None:
        self.bounds(w, r, path)
        for key in ("pattern", "format", "contentEncoding"):
            if key in r and r[key] != w.get(key):
                kind = PATTERN_CHANGED if key == "pattern" else FORMAT_CHANGED
                self.flag(path, kind, f"{key} {w.get(key)!r} -> {r[key]!r}")
        if t == "array":
            self.node(w.get("items", canonical({})), r.get("items", canonical({})), f"{path}[*]")
        if t == "object":
            self.object(w, r, path)

    def bounds(self, w: dict[str, Any], r: dict[str, Any], path: str) -> None:
        for key in _LOWER:
            if r.get(key, 0) > w.get(key, 0):
                self.flag(path, BOUND_TIGHTENED, f"{key} {w.get(key, 0)} -> {r[key]}")
        for key in _UPPER:
            if key in r and (key not in w or r[key] < w[key]):
                self.flag(path, BOUND_TIGHTENED, f"{key} {w.get(key)} -> {r[key]}")
        w_low, r_low = (
            _limit(w, "minimum", "exclusiveMinimum"),
            _limit(r, "minimum", "exclusiveMinimum"),
        )
        if r_low is not None and (w_low is None or _tighter_low(r_low, w_low)):
            self.flag(path, BOUND_TIGHTENED, f"lower bound {w_low} -> {r_low}")
        w_up, r_up = (
            _limit(w, "maximum", "exclusiveMaximum"),
            _limit(r, "maximum", "exclusiveMaximum"),
        )
        if r_up is not None and (
            w_up is None or _tighter_low((-r_up[0], r_up[1]), (-w_up[0], w_up[1]))
        ):
            self.flag(path, BOUND_TIGHTENED, f"upper bound {w_up} -> {r_up}")

    def object(self, w: dict[str, Any], r: dict[str, Any], path: str) -> None:
        w_props, r_props = w.get("properties", {}), r.get("properties", {})
        w_extra, r_extra = (
            w.get("additionalProperties", canonical({})),
            r.get("additionalProperties", canonical({})),
        )
        for name, w_schema in w_props.items():
            sub = child_path(path, name)
            if name in r_props:
                self.node(w_schema, r_props[name], sub)
            elif r_extra is False:
                self.flag(
                    sub,
                    FIELD_NOT_ACCEPTED,
                    f"field `{name}` is unknown to the reader (additionalProperties: false)",
                )
            else:
                self.node(w_schema, r_extra, sub)
        for name in sorted(set(r.get("required", [])) - set(w.get("required", []))):
            sub = child_path(path, name)
            what = (
                "is required by the reader but optional"
                if name in w_props
                else "is a new required field"
            )
            self.flag(sub, FIELD_REQUIRED, f"field `{name}` {what} for the writer")
        for name, r_schema in r_props.items():
            if name not in w_props and w_extra is not False:
                self.node(w_extra, r_schema, child_path(path, name))
        if w_extra is not False:
            if r_extra is False:
                self.flag(f"{path}.*", MAP_CLOSED, "reader accepts no additional properties")
            else:
                self.node(w_extra, r_extra, f"{path}.*")
            w_names = w.get("propertyNames", {"string": {}})
            self.node(w_names, r.get("propertyNames", {"string": {}}), f"{path}.<key>")


def _read(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return loaded


def _limit(kws: dict[str, Any], inclusive: str, exclusive: str) -> tuple[float, bool] | None:
    """The tighter of an inclusive and an exclusive bound, as (value, is_exclusive)."""
    options = [(kws[inclusive], False)] if inclusive in kws else []
    if exclusive in kws:
        options.append((kws[exclusive], True))
    if not options:
        return None
    if inclusive.startswith("min"):
        return max(options, key=lambda o: (o[0], o[1]))
    return min(options, key=lambda o: (o[0], not o[1]))


def _tighter_low(reader: tuple[float, bool], writer: tuple[float, bool]) -> bool:
    """Whether the reader's lower bound rejects values above the writer's lower bound."""
    return reader[0] > writer[0] or (reader[0] == writer[0] and reader[1] and not writer[1])


def _within(value: float | str, bounded: dict[str, Any]) -> bool:
    if isinstance(value, str):
        low, high = bounded.get("minLength", 0), bounded.get("maxLength", len(value))
        return bool(low <= len(value) <= high)
    return bool(bounded.get("minimum", value) <= value <= bounded.get("maximum", value))
