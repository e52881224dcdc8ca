"""``streamscore report``: the subcommand's arguments (the work is in :mod:`.report`).

Kept apart so that every other command starts without importing matplotlib.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from streamscore.libs.config import Settings
from streamscore.libs.topics import DRIFT_ALERT_TOPIC, STREAMS


def add_report_command(sub: Any, settings: Callable[[], Settings]) -> None:
    """Register ``streamscore report`` (not long-running: writes one HTML file and exits)."""
    p = sub.add_parser("report", help="write one self-contained HTML report with plots of a run")
    p.add_argument("--scored", type=Path, help="scored-event log folder (scored-sink --out)")
    p.add_argument(
        "--stream",
        action="append",
        default=[],
        choices=sorted(STREAMS),
        help="streams to include (repeatable; default: every stream in --scored)",
    )
    p.add_argument(
        "--alerts-file",
        action="append",
        default=[],
        type=Path,
        help="drift alerts as JSON lines (repeatable)",
    )
    p.add_argument(
        "--alerts-topic",
        nargs="?",
        const=DRIFT_ALERT_TOPIC,
        default=None,
        help=f"read drift alerts from this topic, from the beginning (default {DRIFT_ALERT_TOPIC})",
    )
    p.add_argument(
        "--realised",
        action="append",
        default=[],
        type=Path,
        help="the joiner's realised report (_report.json) or a folder searched for them",
    )
    p.add_argument(
        "--bench",
        action="append",
        default=[],
        type=Path,
        help="the output of `streamscore bench NAME --json` (repeatable)",
    )
    p.add_argument("--title", default="streamscore run report")
    p.add_argument("--out", type=Path, default=Path("streamscore-report.html"))

    def run(args: argparse.Namespace) -> int:
        from streamscore.services.report import build_report, render, write_report  # noqa: PLC0415

        inputs = build_report(
            scored=args.scored,
            streams=args.stream,
            alerts_files=args.alerts_file,
            alerts_topic=args.alerts_topic,
            settings=settings() if args.alerts_topic else None,
            realised=args.realised,
            bench=args.bench,
        )
        out = write_report(args.out, render(inputs, title=args.title))
        print(f"report: {out} ({out.stat().st_size / 1024:,.0f} KiB)")
        for source in inputs.sources:
            print(f"  {source}")
        return 0

    p.set_defaults(func=run)
