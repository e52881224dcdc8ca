"""The SRE alert rules: valid, unit-tested with promtool, and bound to metrics that exist."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

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


def test_every_dashboard_panel_queries_exported_metrics() -> None:
    for path in sorted(DASHBOARDS.glob("*.json")):
        dashboard = json.loads(path.read_text())
        assert dashboard["panels"], path
        for panel in dashboard["panels"]:
            assert panel["targets"], (path.name, panel["title"])
            for target in panel["targets"]:
                used = set(re.findall(r"streamscore_[a-z_]+", target["expr"]))
                assert used, (path.name, panel["title"], "queries no streamscore metric")
                assert used <= exported_names(), (panel["title"], used - exported_names())
