"""``load-tests/bench_model.py`` returns the DESIGN.md §5 shape (tiny sizes: a smoke test)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[3] / "load-tests" / "bench_model.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_model_under_test", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_shape_and_agreement() -> None:
    bench = _load()
    kwargs = bench.parse_args(["--n-trees", "10", "--runs", "1", "--calls", "5"])
    assert kwargs["n_trees"] == 10
    kwargs["large_trees"] = 0
    result = bench.run(**kwargs, warmup=1)
    assert result["bench"] == "model"
    assert result["conditions"]["n_trees"] == 10
    assert result["conditions"]["parity_flips"] == 0
    rows = result["rows"]
    assert len(rows) == 6
    for row in rows:
        assert {"metric", "value", "unit", "baseline_name", "baseline", "ratio", "better"} <= set(
            row
        )
        assert row["better"] == "lower" and row["value"] > 0 and row["agrees"] is True
        assert row["ratio"] == pytest.approx(row["baseline"] / row["value"], rel=0.01)
