"""``streamscore demo`` end to end: the loop runs, every stream decided, nothing left behind."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import psutil
import pytest

from streamscore.libs.config import Settings
from streamscore.services.clients import endpoints

pytestmark = pytest.mark.integration


def test_demo_runs_the_loop_and_stops_cleanly(stack_settings: Settings, tmp_path: Path) -> None:
    ep = endpoints(stack_settings)
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP": ep.kafka_bootstrap,
        "REDIS_URL": ep.redis_url,
        "STREAMSCORE_HOME": str(tmp_path / "home"),
    }
    prefix = f"demo-{uuid.uuid4().hex[:6]}."
    cmd = [sys.executable, "-m", "streamscore.services.cli", "demo", "--duration", "20"]
    cmd += ["--no-live", "--topic-prefix", prefix, "--api-port", "0"]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, check=False)
    text = out.stdout + out.stderr
    assert out.returncode == 0, text[-3000:]
    assert "API on http://127.0.0.1:" in text
    # Every stream was decided, live: the final table has a row per stream with decisions.
    for stream in ("transactions", "logins", "sensor_readings", "clickstream"):
        row = next(line for line in text.splitlines() if line.startswith(f"│ {stream}"))
        assert int(re.split(r"\s*│\s*", row)[2].replace(",", "")) > 0, row
    assert "tx-fraud-demo-1" in text
    # The label joiner and the retrainer ran too; the view says which model is champion.
    assert "joiner-transactions exit 0" in text and "retrainer-transactions exit 0" in text
    assert "transactions models: champion" in text
    # Every service exited on SIGTERM (none had to be killed) and none is left.
    assert "killed" not in text.split("services stopped:")[1]
    leftovers = [
        p for p in psutil.process_iter(["cmdline"]) if prefix in " ".join(p.info["cmdline"] or [])
    ]
    assert leftovers == []
