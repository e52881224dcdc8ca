"""The ``streamscore`` subcommands of the stream services: pipeline, scored-sink, monitor,
joiner, train and dlq replay (the rest of the command is in :mod:`.cli`)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from streamscore.libs.config import Settings
from streamscore.libs.topics import STREAMS


def settings_from_env() -> Settings:
    """The process's settings (environment, then defaults)."""
    return Settings()


def add_service_commands(sub: Any) -> None:
    """Register the stream services' subcommands on ``sub``."""
    _add_scored_sink_command(sub)
    _add_pipeline_command(sub)
    _add_monitor_command(sub)
    _add_joiner_command(sub)
    _add_train_command(sub)
    _add_dlq_command(sub)


def cmd_pipeline(args: argparse.Namespace) -> int:
    from streamscore.services.pipeline import run_pipeline  # noqa: PLC0415
    from streamscore.services.scorer import load_model  # noqa: PLC0415

    model, reasons = load_model(Path(args.model), args.stream) if args.model else (None, None)
    if model is None:
        print(f"pipeline {args.stream}: no model given, deciding on the degraded path")
    stats = run_pipeline(
        settings_from_env(),
        args.stream,
        model=model,
        explainer=reasons,
        topic_prefix=args.topic_prefix,
        emit_features=not args.no_features,
    )
    print(
        f"pipeline {args.stream}: {stats.consumed:,} consumed, {stats.dead_lettered:,} to DLQ, "
        f"{stats.produced:,} produced, {stats.commits:,} commits"
    )
    return 0


def _add_pipeline_command(sub: Any) -> None:
    """``pipeline``: features and decisions in one process (one Kafka hop)."""
    p = sub.add_parser(
        "pipeline", help="events.<S> -> features (Redis) -> decisions in one process, until stopped"
    )
    p.add_argument("--stream", required=True, choices=sorted(STREAMS))
    p.add_argument("--model", help="model folder (manifest.json, model.onnx, model.ubj)")
    p.add_argument("--topic-prefix", default="", help="namespace of topics and group")
    p.add_argument(
        "--no-features", action="store_true", help="do not also publish features.<S> records"
    )
    p.set_defaults(func=cmd_pipeline)


def cmd_dlq_replay(args: argparse.Namespace) -> int:
    from streamscore.services.dlq_replay import replay_dlq  # noqa: PLC0415

    stats = replay_dlq(
        settings_from_env(), args.topic, reasons=set(args.reason) if args.reason else None
    )
    print(
        f"{args.topic}: replayed {sum(stats.replayed.values()):,} {dict(stats.replayed)}, "
        f"passed over {sum(stats.passed_over.values()):,} {dict(stats.passed_over)}, "
        f"unroutable {stats.unroutable}"
    )
    return 0


def _add_dlq_command(sub: Any) -> None:
    """``dlq replay``: dead letters back to their source topic, after a fix."""
    dlq = sub.add_parser("dlq", help="dead-letter queues")
    dsub = dlq.add_subparsers(dest="dlq_command", required=True)
    rep = dsub.add_parser("replay", help="send a DLQ's records back to their source topic")
    rep.add_argument("--topic", required=True, help="the DLQ, e.g. dlq.events.transactions")
    rep.add_argument("--reason", action="append", help="only records refused for this reason")
    rep.set_defaults(func=cmd_dlq_replay)


def cmd_monitor(args: argparse.Namespace) -> int:
    from streamscore.services.monitor import run_monitor  # noqa: PLC0415

    def ready(topic: str, group: str) -> None:
        print(f"monitor {args.stream}: {topic} -> alerts.drift, group {group}", flush=True)

    stats = run_monitor(
        settings_from_env(),
        args.stream,
        topic_prefix=args.topic_prefix,
        offset_reset=args.offset_reset,
        snapshot_s=args.snapshot_s,
        on_ready=ready,
    )
    print(
        f"monitor {args.stream}: {stats.consumed:,} consumed, {stats.dead_lettered:,} to DLQ, "
        f"{stats.produced:,} produced, {stats.commits:,} commits"
    )
    return 0


def _add_monitor_command(sub: Any) -> None:
    """``monitor``: drift detection on a stream's scored-event log."""
    mon = sub.add_parser(
        "monitor", help="watch scored.<S> for drift: alerts to alerts.drift, until stopped"
    )
    mon.add_argument("--stream", required=True, choices=sorted(STREAMS))
    mon.add_argument("--topic-prefix", default="", help="namespace of topics, group and state")
    mon.add_argument(
        "--offset-reset",
        default="earliest",
        choices=["earliest", "latest"],
        help="where a monitor without saved state starts (earliest: replay the retained log)",
    )
    mon.add_argument(
        "--snapshot-s",
        type=float,
        default=10.0,
        help="seconds between state snapshots (a restart reads again what came after the last)",
    )
    mon.set_defaults(func=cmd_monitor)


def cmd_scored_sink(args: argparse.Namespace) -> int:
    from streamscore.libs.scored_log.segments import RollPolicy  # noqa: PLC0415
    from streamscore.services.scored_sink import run_scored_sink, summary  # noqa: PLC0415

    def ready(topic: str, group: str) -> None:
        print(f"scored-sink {args.stream}: {topic} -> {args.out}, group {group}", flush=True)

    stats = run_scored_sink(
        settings_from_env(),
        args.stream,
        Path(args.out),
        topic_prefix=args.topic_prefix,
        policy=RollPolicy(max_rows=args.max_rows, max_age_s=args.max_age),
        on_ready=ready,
    )
    print(f"scored-sink {args.stream}: {summary(stats)}")
    return 0


def _add_scored_sink_command(sub: Any) -> None:
    """``scored-sink``: the scored-event log to durable Parquet files per day."""
    sink = sub.add_parser(
        "scored-sink", help="write scored.<stream> to Parquet files per UTC day until stopped"
    )
    sink.add_argument("--stream", required=True, choices=sorted(STREAMS))
    sink.add_argument("--out", required=True, help="root folder (files in OUT/<stream>/date=...)")
    sink.add_argument("--topic-prefix", default="", help="namespace of topics and group")
    sink.add_argument("--max-rows", type=int, default=50_000, help="rows per segment at most")
    sink.add_argument("--max-age", type=float, default=5.0, help="seconds before a file closes")
    sink.set_defaults(func=cmd_scored_sink)


def cmd_train(args: argparse.Namespace) -> int:
    from streamscore.services.trainer import run_train  # noqa: PLC0415

    return run_train(args, settings_from_env())


def _add_train_command(sub: Any) -> None:
    """``train``: examples -> delay-aware split -> XGBoost -> ONNX (parity gate) -> MLflow."""
    from streamscore.services.train_config import add_arguments  # noqa: PLC0415

    train = sub.add_parser(
        "train", help="train, evaluate (handbook protocol), export ONNX, log to MLflow"
    )
    add_arguments(train)
    train.set_defaults(func=cmd_train)


def cmd_joiner(args: argparse.Namespace) -> int:
    import json  # noqa: PLC0415

    from streamscore.libs.labels.spec import default_spec  # noqa: PLC0415

    settings = settings_from_env()
    spec = default_spec(
        args.stream,
        horizon=args.horizon,
        grace=args.grace,
        orphan_ttl=args.orphan_ttl,
        lateness=args.lateness,
        bucket=args.bucket,
    )
    if args.memory_probe:
        from streamscore.services.clients import make_redis  # noqa: PLC0415
        from streamscore.services.join_memory import probe  # noqa: PLC0415

        print(
            json.dumps(
                probe(make_redis(settings, timeout_s=30), args.stream, args.memory_probe).to_dict()
            )
        )
        return 0
    if args.report_only:
        from streamscore.services.realised_report import report_once  # noqa: PLC0415

        if args.out is None:
            raise SystemExit("--report-only reads the dataset: give --out")
        report = report_once(settings, args.stream, spec, Path(args.out), args.topic_prefix)
        print(json.dumps(None if report is None else report.to_dict(), default=str, indent=1))
        return 0
    from streamscore.services.label_joiner import run_joiner, summary  # noqa: PLC0415

    def ready(_stats: object) -> None:
        print(f"joiner {args.stream}: ready (horizon {spec.horizon_us / 86_400e6:g} d)", flush=True)

    stats = run_joiner(
        settings,
        args.stream,
        spec,
        topic_prefix=args.topic_prefix,
        out=Path(args.out) if args.out else None,
        commit_interval_s=args.commit_interval,
        report_interval_s=args.report_interval,
        max_batch=args.max_batch,
        idle_s=args.idle,
        on_ready=ready,
    )
    print(f"joiner {args.stream}: {summary(stats)}")
    return 0


def _add_joiner_command(sub: Any) -> None:
    """``joiner``: delayed labels joined to the scored-event log, exactly once."""
    j = sub.add_parser("joiner", help="join labels to scored.<stream> -> examples.labelled")
    j.add_argument("--stream", required=True, choices=sorted(STREAMS))
    j.add_argument("--topic-prefix", default="", help="namespace of topics, group and state")
    j.add_argument("--out", help="Parquet dataset root (OUT/<stream>/date=...) and report")
    j.add_argument("--horizon", help="maturity horizon in stream time (e.g. 120d; per stream)")
    j.add_argument("--grace", help="records kept past the horizon for late labels (e.g. 14d)")
    j.add_argument("--orphan-ttl", help="labels of unseen events kept this long (e.g. 30d)")
    j.add_argument("--lateness", help="watermark lag behind the newest event time (10m)")
    j.add_argument("--bucket", help="maturity scan granularity (1h)")
    j.add_argument("--commit-interval", type=float, default=1.0, help="seconds per transaction")
    j.add_argument("--report-interval", type=float, default=60.0, help="seconds per report")
    j.add_argument("--max-batch", type=int, default=1000)
    j.add_argument(
        "--idle",
        type=float,
        default=5.0,
        help="seconds without records after which a caught-up input partition stops "
        "holding the maturity clock",
    )
    j.add_argument("--report-only", action="store_true", help="write the report once and exit")
    j.add_argument(
        "--memory-probe", type=int, metavar="N", help="measure Redis bytes per pending event"
    )
    j.set_defaults(func=cmd_joiner)
