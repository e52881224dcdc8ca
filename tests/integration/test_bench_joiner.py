"""``load-tests/bench_joiner.py`` end to end with tiny sizes (a smoke test, no timing asserted).

3,000 scored events and their chargebacks through ``streamscore joiner`` on private
topics: the result has the DESIGN.md §5 shape, the oracle rows are 0 (every event
exactly one primary example, no duplicate, the latest label final), the live joiner
agrees with the in-memory machine, and nothing is left behind in Kafka or Redis.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
import redis

from streamscore.libs.config import Settings
from streamscore.libs.labels.layout import JoinKeys
from streamscore.services.clients import make_admin

pytestmark = [pytest.mark.integration, pytest.mark.slow]
BENCH = Path(__file__).resolve().parents[2] / "load-tests" / "bench_joiner.py"


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_joiner_under_test", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its msgspec Structs resolve their module
    spec.loader.exec_module(module)
    return module


def test_bench_joiner_joins_every_event_once(stack_settings: Settings) -> None:
    assert stack_settings.redis_url
    bench = _bench()
    kwargs = bench.parse_args(["--events", "3000", "--probe-events", "2000"])
    assert kwargs["label_share"] == 0.05 and kwargs["partitions"] == 3
    result = bench.run(**kwargs, settings=stack_settings)
    assert result["bench"] == "joiner"
    conditions = result["conditions"]
    assert conditions["events"] == 3000 and conditions["partitions"] == 3
    assert conditions["scored_records"] > 3000  # duplicates and the tick
    assert 0.03 < conditions["labelled_events"] / 3000 < 0.08
    assert conditions["joiner"].startswith("exit code 0:"), conditions["joiner"]
    assert conditions["unexpected_examples"] == 0
    kinds = conditions["example_kinds"]
    assert {"positive", "matured_negative", "correction"} <= set(kinds), kinds
    for key in ("commit_interval_s", "python", "confluent_kafka", "redis_py", "cpu_count"):
        assert key in conditions
    for row in result["rows"]:
        assert {"metric", "value", "unit", "better"} <= set(row)
    rows = {r["metric"]: r for r in result["rows"]}
    live = rows["joiner input records/s (backlog, Kafka + Redis, exactly once)"]
    assert live["value"] > 0 and live["baseline"] > 0 and live["ratio"] > 0
    assert live["agrees"] is True  # final labels: the live joiner = the in-memory machine
    assert rows["examples emitted/s (until drained)"]["value"] > 0
    out = rows["examples out (committed)"]["value"]
    assert out == sum(kinds.values()) == 3000 + kinds["correction"]
    assert rows["lost events (no primary example)"]["value"] == 0
    assert rows["duplicate examples (same id, revision)"]["value"] == 0
    assert rows["wrong final labels"]["value"] == 0
    assert rows["Redis bytes per pending event"]["value"] > 0
    assert rows["Redis for 10M pending events"]["value"] > 0
    # Cleaned up: no topic of the run, none of its joiner keys in Redis DB 0.
    prefix = conditions["topic_prefix"]
    names = make_admin(stack_settings).list_topics(timeout=10).topics
    assert not [t for t in names if t.startswith(prefix)]
    client = redis.Redis.from_url(stack_settings.redis_url.rsplit("/", 1)[0] + "/0")
    assert not list(client.scan_iter(match=JoinKeys(prefix, "transactions").pattern()))
