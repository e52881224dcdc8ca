"""``streamscore bench NAME``: run ``load-tests/bench_NAME.py`` and print its figures.

A benchmark module exposes ``run(**kwargs) -> dict`` returning the JSON shape of
DESIGN.md §5 (``bench``, ``conditions``, ``rows``) and, optionally,
``parse_args(argv) -> dict`` turning extra command-line arguments into those
keyword arguments. Printing is done here, once, for every benchmark.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import streamscore.services


def load_tests_dir() -> Path:
    """``load-tests/`` of the checkout (or ``STREAMSCORE_LOAD_TESTS_DIR``)."""
    override = os.environ.get("STREAMSCORE_LOAD_TESTS_DIR")
    if override:
        return Path(override)
    return Path(streamscore.services.__file__).resolve().parents[3] / "load-tests"


def available() -> list[str]:
    """Names of the benchmarks present."""
    return sorted(p.stem.removeprefix("bench_") for p in load_tests_dir().glob("bench_*.py"))


def _load(name: str) -> ModuleType:
    path = load_tests_dir() / f"bench_{name}.py"
    if not path.exists():
        msg = f"no benchmark {name!r}; available: {', '.join(available()) or 'none'}"
        raise SystemExit(msg)
    spec = importlib.util.spec_from_file_location(f"streamscore_bench_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Registered so that names in the module resolve for libraries that evaluate
    # its annotations later (msgspec Structs, dataclasses).
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _num(v: float) -> str:
    """A figure for people: thousands separated, small numbers with 4 significant digits."""
    return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.4g}"


def format_table(result: dict[str, Any]) -> str:
    """A readable table of a benchmark result."""
    lines = [f"bench: {result['bench']}"]
    for key, value in result.get("conditions", {}).items():
        lines.append(f"  {key}: {value}")
    header = ("metric", "value", "unit", "baseline", "baseline name", "ratio", "agrees")
    rows = [header]
    for r in result["rows"]:
        rows.append(
            (
                str(r["metric"]),
                _num(r["value"]),
                str(r.get("unit", "")),
                "" if r.get("baseline") is None else _num(r["baseline"]),
                str(r.get("baseline_name", "")),
                "" if r.get("ratio") is None else f"{r['ratio']:.2f}x",
                "" if r.get("agrees") is None else str(r["agrees"]),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for row in rows:
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
    return "\n".join(lines)


def run_bench(name: str, *, as_json: bool, extra: list[str]) -> int:
    """Run one benchmark and print its result."""
    module = _load(name)
    kwargs: dict[str, Any] = module.parse_args(extra) if hasattr(module, "parse_args") else {}
    result: dict[str, Any] = module.run(**kwargs)
    print(json.dumps(result) if as_json else format_table(result))
    return 0
