"""``load-tests/bench_scale.py`` end to end with tiny sizes (a smoke test, no timing asserted).

Two fused pipelines share one consumer group on 12-partition topics: each must
own half of the event partitions and decide a share of the events (the
cooperative-sticky assignor gave one member every event partition and the other
every label partition), and while processes join, leave (SIGTERM) and crash
(SIGKILL) nothing is lost and no event gets two different decisions.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from streamscore.libs.config import Settings

pytestmark = pytest.mark.integration
BENCH = Path(__file__).resolve().parents[2] / "load-tests" / "bench_scale.py"


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_scale_under_test", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses resolve their module
    spec.loader.exec_module(module)
    return module


def test_bench_scale_spreads_work_and_loses_nothing(stack_settings: Settings) -> None:
    bench = _bench()
    argv = "--procs 2 --backlog 300 --rate 100 --duration 2 --churn-duration 12"
    kwargs = bench.parse_args(argv.split())
    result = bench.run(**kwargs, settings=stack_settings)
    assert result["bench"] == "scale"
    conditions = result["conditions"]
    assert conditions["partitions"] == 12
    assert conditions["partitions_per_process"] == {2: [6, 6]}
    shares = conditions["decision_share_per_process"][2]
    assert len(shares) == 2 and min(shares) > 0.25, shares
    assert [line.split()[1:] for line in conditions["churn"]["schedule"] if "->" in line] == [
        ["add", "2", "->", "4"],
        ["SIGTERM", "1", "->", "3"],
        ["SIGKILL", "1", "->", "2"],
        ["add", "1", "->", "3"],
    ]
    assert conditions["churn"]["processes_exited_early"] == []  # only the schedule stops one
    rows = {r["metric"]: r for r in result["rows"]}
    oracle = next(r for m, r in rows.items() if m.startswith("churn 2->4->2->3"))
    assert oracle["value"] == 0, oracle  # lost
    assert "conflicting 0" in oracle["unit"], oracle
    for row in result["rows"]:
        assert {"metric", "value", "unit", "better"} <= set(row)
