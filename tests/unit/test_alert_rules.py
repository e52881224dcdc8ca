"""The SRE alert rules: valid, unit-tested with promtool, and bound to metrics that exist."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from prometheus_client import CollectorRegistry

from streamscore.services.metrics import DecisionMetrics, StreamMetrics

RULES_DIR = Path(__file__).resolve().parents[2] / "ops" / "prometheus"


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
    registry = CollectorRegistry()
    StreamMetrics(registry)
    DecisionMetrics(registry)
    exported = {mf.name for mf in registry.collect()}
    exported |= {s.name for mf in registry.collect() for s in mf.samples}
    # Counters are exported as <name>_total; histograms as _bucket/_count/_sum.
    exported |= {f"{n}_total" for n in exported} | {f"{n}_bucket" for n in exported}
    used = set(re.findall(r"streamscore_[a-z_]+", (RULES_DIR / "alerts.yml").read_text()))
    assert used, "no metric found in the rules"
    assert used <= exported, sorted(used - exported)
