"""Fixtures of the contract tests: strict JSON Schema validators of the repository's schemas.

The validators differ from jsonschema's defaults in two documented ways
(schemas/README.md): ``date-time`` is checked as RFC 3339 (jsonschema skips it
without the optional ``rfc3339-validator`` package), and ``integer`` means a
JSON integer literal (``3``, not ``3.0``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

import jsonschema
import pytest

from streamscore.libs.contracts.registry import CONTRACTS, load_schema

RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?"
    r"(?:[Zz]|[+-](\d{2}):(\d{2}))$",
    re.ASCII,
)


def is_rfc3339(value: object) -> bool:
    """RFC 3339 ``date-time`` (section 5.6), leap seconds excluded as msgspec does."""
    if not isinstance(value, str):
        return True
    m = RFC3339.match(value)
    if not m:
        return False
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    if m.group(8) is not None and (int(m.group(8)) > 23 or int(m.group(9)) > 59):
        return False
    try:
        datetime(year, month, day, hour, minute, second)
    except ValueError:
        return False
    return True


def _is_integer(_checker: object, instance: object) -> bool:
    return isinstance(instance, int) and not isinstance(instance, bool)


_FORMATS = jsonschema.FormatChecker(formats=())
_FORMATS.checks("date-time")(is_rfc3339)
_Strict = jsonschema.validators.extend(
    jsonschema.Draft202012Validator,
    type_checker=jsonschema.Draft202012Validator.TYPE_CHECKER.redefine("integer", _is_integer),
)


def strict_validator(schema: dict[str, Any]) -> Any:
    """A Draft 2020-12 validator with RFC 3339 date-time and strict integers."""
    jsonschema.Draft202012Validator.check_schema(schema)
    return _Strict(schema, format_checker=_FORMATS)


@pytest.fixture(scope="session")
def make_validator() -> Callable[[dict[str, Any]], Any]:
    return strict_validator


@pytest.fixture(scope="session")
def validators() -> dict[str, Any]:
    """Contract name -> validator of its latest schema file."""
    return {c.name: strict_validator(load_schema(c)) for c in CONTRACTS}
