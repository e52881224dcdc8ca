"""The SRE alert rules: valid, unit-tested with promtool, and bound to metrics that exist."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from streamscore.services.metrics import exported_names

RULES_DIR = Path(__file__).resolve().parents[2] / "ops" / "prometheus"
DASHBOARDS = RULES_DIR.parent / "grafana"


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: scripts/setup.sh installs it (package prometheus)"
    return subprocess.run(
        [promtool, *args], cwd=RULES_DIR, capture_output=True, text=True, check=False
    )


def test_rules_are_valid() -> None:
    out = _promtool("check", "rules", "alerts.yml")
    assert out.returncode == 0, out.stdout + out.stderr


def test_rules_fire_as_their_unit_tests_say() -> None:
    out = _promtool("test", "rules", "alerts_test.yml")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout


def test_rules_only_name_exported_metrics() -> None:
    used = set(re.findall(r"streamscore_[a-z_]+", (RULES_DIR / "alerts.yml").read_text()))
    assert used, "no metric found in the rules"
    assert used <= exported_names(), sorted(used - exported_names())


def _dashboards() -> list[tuple[str, dict[str, Any]]]:
    found = [(p.name, json.loads(p.read_text())) for p in sorted(DASHBOARDS.glob("*.json"))]
    assert {name for name, _ in found} >= {
        "streamscore-overview.json",
        "streamscore-latency.json",
        "streamscore-model-health.json",
        "streamscore-drift.json",
    }
    return found


def _template_queries(dashboard: dict[str, Any]) -> list[str]:
    out = []
    for var in dashboard.get("templating", {}).get("list", []):
        if var.get("type") == "query":
            q = var["query"]
            out.append(q["query"] if isinstance(q, dict) else q)
    return out


def test_every_dashboard_panel_queries_exported_metrics() -> None:
    for name, dashboard in _dashboards():
        assert dashboard["panels"], name
        for panel in dashboard["panels"]:
            assert panel["targets"], (name, panel["title"])
            for target in panel["targets"]:
                used = set(re.findall(r"streamscore_[a-z_]+", target["expr"]))
                assert used, (name, panel["title"], "queries no streamscore metric")
                assert used <= exported_names(), (panel["title"], used - exported_names())
        for query in _template_queries(dashboard):
            used = set(re.findall(r"streamscore_[a-z_]+", query))
            assert used and used <= exported_names(), (name, query)


def test_dashboard_queries_parse_as_promql(tmp_path: Path) -> None:
    """Every panel query, with Grafana's variables filled in, is valid PromQL.

    promtool has no query parser of its own in this version, so each query
    becomes a recording rule and ``promtool check rules`` parses it.
    """
    fill = {"$stream": "transactions|logins", "$__range": "1h", "$__rate_interval": "1m"}
    rules: list[dict[str, str]] = []
    for name, dashboard in _dashboards():
        assert any(v["name"] == "stream" for v in dashboard["templating"]["list"]) or (
            name == "streamscore-overview.json"
        ), name
        for panel in dashboard["panels"]:
            for target in panel["targets"]:
                expr = target["expr"]
                for var, value in fill.items():
                    expr = expr.replace(var, value)
                assert "$" not in expr, (name, panel["title"], expr)
                rules.append({"record": f"dashboard:check_{len(rules)}", "expr": expr})
    path = tmp_path / "dashboards.yml"
    path.write_text(json.dumps({"groups": [{"name": "dashboards", "rules": rules}]}))
    out = _promtool("check", "rules", str(path))
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"{len(rules)} rules found" in out.stdout
