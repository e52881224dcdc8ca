"""ContractError: why a message was refused, as data (the DLQ headers carry it).

msgspec reports problems as English messages; :func:`classify` turns them into
one of the :data:`REASONS` codes and a JSON path, so services can route and count
them without parsing text themselves.

>>> classify("Expected `float`, got `str` - at `$.amount`")
('wrong_type', '$.amount')
>>> classify("Object missing required field `code` - at `$.reasons[0]`")
('missing_field', '$.reasons[0].code')
>>> classify("Object contains unknown field `x`")
('extra_field', '$.x')
>>> classify("Expected `float` >= 0.0 - at `$.amount`")
('constraint', '$.amount')
"""

from __future__ import annotations

import re
from typing import Final, Literal, get_args

Reason = Literal[
    "oversize",
    "not_utf8",
    "not_json",
    "schema_violation",
    "missing_field",
    "wrong_type",
    "extra_field",
    "constraint",
    "unknown_schema",
    "semantic",
]
#: Every reason code, in declaration order (the DLQ schema's enum).
REASONS: Final[tuple[Reason, ...]] = get_args(Reason)

OVERSIZE: Final[Reason] = "oversize"
NOT_UTF8: Final[Reason] = "not_utf8"
NOT_JSON: Final[Reason] = "not_json"
SCHEMA_VIOLATION: Final[Reason] = "schema_violation"
MISSING_FIELD: Final[Reason] = "missing_field"
WRONG_TYPE: Final[Reason] = "wrong_type"
EXTRA_FIELD: Final[Reason] = "extra_field"
CONSTRAINT: Final[Reason] = "constraint"
UNKNOWN_SCHEMA: Final[Reason] = "unknown_schema"
SEMANTIC: Final[Reason] = "semantic"

ROOT_PATH: Final = "$"

_AT = re.compile(r" - at `(?P<path>.*)`$", re.DOTALL)
_KEY_IN = re.compile(r"^key` in `(?P<path>.*)$", re.DOTALL)
_NAMED = re.compile(
    r"^Object (?P<what>missing required|contains unknown) field `(?P<name>.*)`$", re.DOTALL
)
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_CONSTRAINT_MARKERS = (
    "Invalid enum value",
    "Invalid RFC3339",
    "Invalid base64",
    "with a timezone",
    "without a timezone",
    "out of range",
    "matching regex",
    "of length",
    ">=",
    "<=",
    " > ",
    " < ",
    "Invalid value",
)


class ContractError(ValueError):
    """A message that does not satisfy its contract.

    ``reason`` is one of :data:`REASONS`; ``field`` a JSON path (``"$.amount"``)
    or ``None`` when the whole message is at fault; ``schema`` names the
    contract (``"transaction/1"``) when known.

    >>> e = ContractError("constraint", "Expected `float` >= 0.0", field="$.amount")
    >>> (e.reason, e.field, str(e))
    ('constraint', '$.amount', 'constraint at $.amount: Expected `float` >= 0.0')
    """

    def __init__(
        self,
        reason: Reason,
        detail: str,
        *,
        field: str | None = None,
        schema: str | None = None,
    ) -> None:
        where = f" at {field}" if field else ""
        super().__init__(f"{reason}{where}: {detail}")
        self.reason: Reason = reason
        self.detail = detail
        self.field = field
        self.schema = schema

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild, (self.reason, self.detail, self.field, self.schema))


def _rebuild(reason: Reason, detail: str, field: str | None, schema: str | None) -> ContractError:
    return ContractError(reason, detail, field=field, schema=schema)


def child_path(parent: str, name: str) -> str:
    """JSON path of member ``name`` of the object at ``parent``.

    >>> child_path("$", "amount"), child_path("$.a", "odd key")
    ('$.amount', "$.a['odd key']")
    """
    if _IDENT.match(name):
        return f"{parent}.{name}"
    escaped = name.replace("\\", "\\\\").replace("'", "\\'")
    return f"{parent}['{escaped}']"


def classify(message: str) -> tuple[Reason, str]:
    """The reason code and JSON path of a msgspec validation message."""
    path = ROOT_PATH
    body = message
    at = _AT.search(message)
    if at:
        body = message[: at.start()]
        path = at.group("path").replace("[...]", ".*")
        key_in = _KEY_IN.match(path)
        if key_in:  # a map key failed: report the map
            path = key_in.group("path").replace("[...]", ".*")
    named = _NAMED.match(body)
    if named:
        reason: Reason = MISSING_FIELD if named.group("what") == "missing required" else EXTRA_FIELD
        return reason, child_path(path, named.group("name"))
    if body.startswith("Expected `") and ", got `" in body:
        return WRONG_TYPE, path
    if any(marker in body for marker in _CONSTRAINT_MARKERS):
        return CONSTRAINT, path
    return SCHEMA_VIOLATION, path
