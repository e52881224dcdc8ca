from __future__ import annotations

import json
import subprocess
import sys

from streamscore.services.bench import format_table
from streamscore.services.cli import build_parser


def test_parser_knows_every_command() -> None:
    parser = build_parser()
    for argv in (
        ["up"],
        ["down"],
        ["env"],
        ["status"],
        ["topics", "create"],
        ["topics", "list"],
        ["demo", "--duration", "10", "--no-live"],
        ["pipeline", "--stream", "transactions"],
        ["joiner", "--stream", "transactions", "--horizon", "36h", "--out", "/tmp/x"],
        ["dlq", "replay", "--topic", "dlq.events.logins"],
        ["bench", "x", "--json"],
        ["simulate", "--out", "/tmp/x"],
        ["produce", "--rate", "10"],
        ["scorer", "--stream", "transactions"],
        ["api", "--port", "8081"],
        ["replay", "tx-1", "--stream", "transactions"],
        ["token", "--subject", "me", "--scopes", "admin"],
        ["train", "--sim", "/tmp/x", "--register", "--train-start", "2026-02-14"],
    ):
        assert parser.parse_args(argv).command == argv[0]


def test_console_script_help_runs() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "streamscore.services.cli", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "topics" in out.stdout and "demo" in out.stdout


def test_bench_table_shows_ratio_and_conditions() -> None:
    result = json.loads(
        '{"bench": "x", "conditions": {"n": 10}, "rows": [{"metric": "m ns/update", '
        '"value": 41.0, "unit": "ns", "baseline_name": "river", "baseline": 809.0, '
        '"ratio": 19.7, "better": "lower", "agrees": true}]}'
    )
    table = format_table(result)
    assert "19.70x" in table and "n: 10" in table and "river" in table
