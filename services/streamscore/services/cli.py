"""The ``streamscore`` command: one entry point for the stack, topics, the demo and benchmarks."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from streamscore.libs.config import Settings, redact_url
from streamscore.libs.topics import STREAMS, catalogue
from streamscore.services import stack
from streamscore.services.cli_model import add_model_command, add_retrainer_command
from streamscore.services.cli_report import add_report_command
from streamscore.services.cli_rollout import add_rollout_command
from streamscore.services.cli_services import add_service_commands, settings_from_env


def _settings() -> Settings:
    return settings_from_env()


def cmd_up(args: argparse.Namespace) -> int:
    settings = _settings()
    info = stack.up(settings)
    if not args.no_topics:
        _create_topics(settings, quiet=True)
    print()
    print(f"Kafka (KRaft)  {info.kafka_bootstrap}")
    print(f"Redis          {redact_url(info.redis_url)}")
    if info.logs_dir is not None:
        print(f"logs           {info.logs_dir}")
    print("stop with      streamscore down")
    print("point a shell  eval $(streamscore env)")
    print()
    for line in stack.env_lines(info):
        print(line)
    return 0


def cmd_down(_args: argparse.Namespace) -> int:
    stopped = stack.down(_settings())
    print("stack stopped" if stopped else "no local stack was running")
    return 0


def cmd_env(_args: argparse.Namespace) -> int:
    info = stack.status(_settings())
    if info is None:
        print("no local stack is running: run `streamscore up`", file=sys.stderr)
        return 1
    for line in stack.env_lines(info):
        print(line)
    return 0


def cmd_status(_args: argparse.Namespace) -> int:
    settings = _settings()
    info = stack.status(settings)
    if info is None:
        print("no local stack is running")
        return 1
    kind = "local processes" if info.managed else "external endpoints"
    print(
        f"stack ({kind}): kafka {info.kafka_bootstrap} pid={info.kafka_pid}; "
        f"redis {redact_url(info.redis_url)} pid={info.redis_pid}"
    )
    return 0


def _create_topics(settings: Settings, *, quiet: bool = False) -> int:
    from streamscore.services.clients import make_admin  # noqa: PLC0415 (needs a running stack)
    from streamscore.services.topics_admin import create_topics  # noqa: PLC0415

    specs = catalogue(
        settings.topic_partitions,
        settings.topic_replication,
        retention_hours=settings.retention_hours,
        dlq_retention_hours=settings.dlq_retention_hours,
    )
    outcomes = create_topics(make_admin(settings), specs)
    errors = [o for o in outcomes if o.status.startswith("error")]
    created = sum(o.status == "created" for o in outcomes)
    for o in outcomes:
        if not quiet or o.status not in ("created", "exists"):
            print(f"{o.name:40s} {o.partitions:4d}  {o.status}")
    print(
        f"topics: {created} created, {len(outcomes) - created - len(errors)} already there, "
        f"{len(errors)} errors"
    )
    return 1 if errors else 0


def cmd_topics(args: argparse.Namespace) -> int:
    settings = _settings()
    if args.action == "create":
        return _create_topics(settings)
    from streamscore.services.clients import make_admin  # noqa: PLC0415
    from streamscore.services.topics_admin import list_topics  # noqa: PLC0415

    for name, parts in list_topics(make_admin(settings)).items():
        print(f"{name:40s} {parts:4d}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from streamscore.services.demo import DemoOptions, run_demo  # noqa: PLC0415

    opts = DemoOptions(
        duration_s=args.duration,
        speedup=args.speedup,
        scenario=args.scenario,
        seed=args.seed,
        topic_prefix=args.topic_prefix,
        api_port=args.api_port,
        live=not args.no_live,
        horizon=args.horizon,
        promote=args.promote,
    )
    return run_demo(_settings(), opts)


def cmd_simulate(args: argparse.Namespace) -> int:
    from streamscore.libs.simulator.scenario import get  # noqa: PLC0415
    from streamscore.services.sim_files import simulate_to_files  # noqa: PLC0415

    scenario = get(args.scenario)
    if args.days is not None:
        scenario = scenario.with_days(args.days)
    counts = simulate_to_files(scenario, seed=args.seed, out=Path(args.out))
    for topic, n in counts.items():
        print(f"{topic:28s} {n:12,d}")
    return 0


def cmd_produce(args: argparse.Namespace) -> int:
    from streamscore.libs.simulator.scenario import get  # noqa: PLC0415
    from streamscore.services.clients import make_producer  # noqa: PLC0415
    from streamscore.services.sim_producer import publish  # noqa: PLC0415

    scenario = get(args.scenario)
    if args.days is not None:
        scenario = scenario.with_days(args.days)
    producer = make_producer(_settings(), client_id="streamscore-produce")
    stats = publish(
        scenario.records(args.seed),
        producer,
        rate=args.rate,
        speedup=args.speedup,
        duration_s=args.duration,
        limit=args.limit,
    )
    for topic, n in sorted(stats.by_topic.items()):
        print(f"{topic:28s} {n:12,d}")
    print(
        f"sent {stats.sent:,} in {stats.send_s:.1f} s ({stats.rate:,.0f}/s), "
        f"acked {stats.acked:,}, failed {sum(stats.failed.values())} {stats.failed or ''}, "
        f"unsent {stats.unsent}, at most {stats.max_behind_s:.2f} s behind schedule"
    )
    return 0 if stats.unsent == 0 and not stats.failed else 1


def cmd_scorer(args: argparse.Namespace) -> int:
    from streamscore.libs.policy.spec import load_policy  # noqa: PLC0415
    from streamscore.services.scorer import default_policy, load_model, run_scorer  # noqa: PLC0415

    settings = _settings()
    policy = (
        load_policy(Path(args.policy).read_bytes()) if args.policy else default_policy(args.stream)
    )
    model, reasons = load_model(Path(args.model), args.stream) if args.model else (None, None)
    if model is None:
        print(
            f"scorer {args.stream}: no model given: the model store's active one if any, "
            f"else the degraded path (rules and the policy's floor)",
            file=sys.stderr,
        )
    stats = run_scorer(
        settings,
        args.stream,
        policy=policy,
        model=model,
        explainer=reasons,
        topic_prefix=args.topic_prefix,
    )
    print(
        f"scorer {args.stream}: {stats.consumed:,} consumed, {stats.dead_lettered:,} to DLQ, "
        f"{stats.commits:,} commits"
    )
    return 0


def cmd_processor(args: argparse.Namespace) -> int:
    from streamscore.services.feature_agent import run_processor  # noqa: PLC0415

    return run_processor(_settings(), args.stream, topic_prefix=args.topic_prefix)


def cmd_features_verify(args: argparse.Namespace) -> int:
    from prometheus_client import start_http_server  # noqa: PLC0415

    from streamscore.services.feature_verify import run_verify  # noqa: PLC0415
    from streamscore.services.metrics import FeatureMetrics  # noqa: PLC0415

    settings = _settings()
    if args.follow and settings.metrics_port is not None:
        start_http_server(settings.metrics_port, addr=settings.bind_host)
    res = run_verify(
        settings,
        args.stream,
        topic_prefix=args.topic_prefix,
        follow=args.follow,
        metrics=FeatureMetrics(),
    )
    a = res.agreement
    print(
        f"{args.stream}: {a.compared:,} events compared, {a.status_mismatches:,} status mismatches"
    )
    for f in a.features:
        print(f"  {f:40s} {a.mismatches[f]:8,d} mismatches  ({a.ratio(f):.4%})")
    if res.unmatched or res.refused:
        print(f"  unmatched: {res.unmatched:,}, refused (DLQ): {res.refused:,}")
    return 0 if a.compared and not any(a.mismatches.values()) else 1


def cmd_features_offline(args: argparse.Namespace) -> int:
    from streamscore.services.training_set import run_offline  # noqa: PLC0415

    return run_offline(Path(args.sim), Path(args.out) if args.out else None, stream=args.stream)


def _add_features_offline(fsub: Any) -> None:
    off = fsub.add_parser("offline", help="training set + Feast offline files from `simulate`")
    off.add_argument("--sim", required=True, help="folder written by `streamscore simulate`")
    off.add_argument("--out", default=None, help="output folder (default: the --sim folder)")
    off.add_argument("--stream", default="transactions", choices=sorted(STREAMS))
    off.set_defaults(func=cmd_features_offline)


def cmd_api(args: argparse.Namespace) -> int:
    import uvicorn  # noqa: PLC0415

    from streamscore.services.api.app import create_app  # noqa: PLC0415
    from streamscore.services.api.score import build_sync_scoring  # noqa: PLC0415
    from streamscore.services.clients import endpoints, make_redis  # noqa: PLC0415
    from streamscore.services.scorer import load_model  # noqa: PLC0415

    settings = _settings()
    models = {}
    for spec in args.model:
        stream, sep, folder = spec.partition("=")
        if not sep or stream not in STREAMS:
            raise SystemExit(f"--model wants STREAM=FOLDER with STREAM in {sorted(STREAMS)}")
        models[stream] = load_model(Path(folder), stream)  # refused: the API does not start
    scoring = build_sync_scoring(
        settings,
        models,
        topic_prefix=args.topic_prefix,
        store_deadline_s=args.store_deadline_ms / 1000.0,
    )
    app = create_app(
        settings,
        make_redis(settings),
        kafka_bootstrap=endpoints(settings).kafka_bootstrap,
        scoring=scoring,
    )
    served = ", ".join(f"{s}={v or 'degraded path'}" for s, v in scoring.models().items())
    print(f"API on http://{settings.bind_host}:{args.port} (docs at /docs, metrics at /metrics)")
    print(f"scoring: POST /v1/score/<stream> — {served}")
    try:
        uvicorn.run(app, host=settings.bind_host, port=args.port, log_level="warning")
    finally:
        scoring.close()
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    from streamscore.services.api.auth import issue_token  # noqa: PLC0415

    key = _settings().api_signing_key.get_secret_value()
    print(issue_token(key, args.subject, args.scopes.split(","), ttl_s=args.ttl))
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from streamscore.services.clients import make_redis  # noqa: PLC0415
    from streamscore.services.policy_store import PolicyStore  # noqa: PLC0415
    from streamscore.services.replay import (  # noqa: PLC0415
        find_scored,
        policy_version,
        replay,
    )

    settings = _settings()
    rec = find_scored(settings, args.stream, args.event_id, topic_prefix=args.topic_prefix)
    policy = policy_version(PolicyStore(make_redis(settings)), args.stream, rec.policy_version)
    result = replay(rec, policy=policy, model_dir=Path(args.model) if args.model else None)
    print(
        f"logged:   {rec.decision} score={rec.score} path={rec.policy_path} "
        f"model={rec.model_version} policy={rec.policy_version}"
    )
    print(f"replayed: {result.decision} score={result.score} path={result.policy_path}")
    print("identical" if result.identical else "DIFFERENT")
    return 0 if result.identical else 1


def cmd_bench(args: argparse.Namespace) -> int:
    from streamscore.services.bench import run_bench  # noqa: PLC0415

    return run_bench(args.name, as_json=args.json, extra=args.extra)


def _add_api_command(sub: Any) -> None:
    """``api``: the HTTP API (sync scoring, administration)."""
    api = sub.add_parser("api", help="serve the HTTP API on 127.0.0.1")
    api.add_argument("--port", type=int, default=8080)
    api.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="STREAM=FOLDER",
        help="model folder serving a stream's sync scoring (repeatable; none: degraded path)",
    )
    api.add_argument("--topic-prefix", default="", help="namespace of the decision topics")
    api.add_argument(
        "--store-deadline-ms",
        type=float,
        default=100.0,
        help="feature step's deadline per batch; past it the degraded path decides",
    )
    api.set_defaults(func=cmd_api)


def _add_data_and_service_commands(sub: Any) -> None:
    """``simulate``, ``produce``, ``processor``, ``scorer`` and ``token``."""
    sim = sub.add_parser("simulate", help="write a scenario's streams to Parquet files")
    sim.add_argument("--scenario", default="default")
    sim.add_argument("--days", type=int, default=None, help="override the scenario's days")
    sim.add_argument("--seed", type=int, default=0)
    sim.add_argument("--out", required=True, help="output folder")
    sim.set_defaults(func=cmd_simulate)
    prod = sub.add_parser("produce", help="publish a scenario to Kafka")
    prod.add_argument("--scenario", default="default")
    prod.add_argument("--days", type=int, default=None, help="override the scenario's days")
    prod.add_argument("--seed", type=int, default=0)
    pace = prod.add_mutually_exclusive_group()
    pace.add_argument("--rate", type=float, default=None, help="records/s, steady")
    pace.add_argument("--speedup", type=float, default=None, help="replay event time X× faster")
    prod.add_argument("--duration", type=float, default=None, help="stop after T seconds")
    prod.add_argument("--limit", type=int, default=None, help="stop after N records")
    prod.set_defaults(func=cmd_produce)
    scorer = sub.add_parser("scorer", help="run the scorer of one stream until stopped")
    scorer.add_argument("--stream", required=True, choices=sorted(STREAMS))
    scorer.add_argument(
        "--model",
        help="model folder (manifest.json, model.onnx, model.ubj); the fallback: the model "
        "store's active model for the stream wins when there is one",
    )
    scorer.add_argument("--policy", help="policy JSON (default: policies/<stream>.json)")
    scorer.add_argument("--topic-prefix", default="", help="namespace of topics and group")
    scorer.set_defaults(func=cmd_scorer)
    proc = sub.add_parser("processor", help="run the feature processor of one stream until stopped")
    proc.add_argument("--stream", required=True, choices=sorted(STREAMS))
    proc.add_argument("--topic-prefix", default="", help="namespace of topics and group")
    proc.set_defaults(func=cmd_processor)
    feats = sub.add_parser("features", help="offline features and online/offline checks")
    fsub = feats.add_subparsers(dest="features_command", required=True)
    verify = fsub.add_parser("verify", help="recompute features offline and compare with online")
    verify.add_argument("--stream", required=True, choices=sorted(STREAMS))
    verify.add_argument("--topic-prefix", default="")
    verify.add_argument("--follow", action="store_true", help="keep comparing until stopped")
    verify.set_defaults(func=cmd_features_verify)
    _add_features_offline(fsub)
    rep = sub.add_parser("replay", help="reproduce a logged decision from the scored-event log")
    rep.add_argument("event_id")
    rep.add_argument("--stream", default="transactions", choices=sorted(STREAMS))
    rep.add_argument("--model", help="folder of the model version that decided")
    rep.add_argument("--topic-prefix", default="")
    rep.set_defaults(func=cmd_replay)
    token = sub.add_parser("token", help="issue a bearer token signed with the API key")
    token.add_argument("--subject", required=True)
    token.add_argument("--scopes", default="score", help="comma-separated: score,admin")
    token.add_argument("--ttl", type=int, default=3600, help="seconds")
    token.set_defaults(func=cmd_token)


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = argparse.ArgumentParser(
        prog="streamscore", description="Streaming real-time scoring on Kafka."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start the local stack (Kafka KRaft + Redis) and create topics")
    up.add_argument("--no-topics", action="store_true", help="do not create the topics")
    up.set_defaults(func=cmd_up)
    sub.add_parser("down", help="stop the local stack").set_defaults(func=cmd_down)
    sub.add_parser("env", help="print KAFKA_BOOTSTRAP/REDIS_URL of the running stack").set_defaults(
        func=cmd_env
    )
    sub.add_parser("status", help="is the local stack running?").set_defaults(func=cmd_status)
    topics = sub.add_parser("topics", help="create or list topics")
    topics.add_argument("action", choices=["create", "list"])
    topics.set_defaults(func=cmd_topics)
    demo = sub.add_parser("demo", help="the main job: the whole loop, live, on the local stack")
    demo.add_argument("--duration", type=float, default=None, help="seconds (default: Ctrl-C)")
    demo.add_argument(
        "--speedup",
        type=float,
        default=2880.0,
        help="simulated seconds per second (2880: a day in 30 s)",
    )
    demo.add_argument("--scenario", default="small", help="simulated world")
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--topic-prefix", default="", help="namespace of topics and groups")
    demo.add_argument("--api-port", type=int, default=8080)
    demo.add_argument("--no-live", action="store_true", help="a line every 5 s, not a live table")
    demo.add_argument(
        "--horizon", default="30d", help="label joiner maturity horizon (simulated time)"
    )
    demo.add_argument(
        "--promote",
        choices=["approval", "auto"],
        default="approval",
        help="a retrained challenger that passed shadow and canary: wait for approval or promote",
    )
    demo.set_defaults(func=cmd_demo)
    _add_data_and_service_commands(sub)
    _add_api_command(sub)
    add_service_commands(sub)
    add_model_command(sub)
    add_retrainer_command(sub)
    add_report_command(sub, _settings)
    add_rollout_command(sub)
    bench = sub.add_parser("bench", help="run a benchmark from load-tests/")
    bench.add_argument("name")
    bench.add_argument("--json", action="store_true", help="print one JSON object")
    bench.set_defaults(func=cmd_bench)
    return parser


#: Commands that run until stopped on Kafka and Redis: they check access first.
SERVICE_COMMANDS = frozenset(
    {"pipeline", "processor", "scorer", "monitor", "joiner", "scored-sink", "retrainer", "api"}
)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``streamscore`` console script."""
    parser = build_parser()
    # Arguments the CLI does not know are the benchmark's own (``bench NAME --n 10``);
    # anywhere else they are an error.
    args, extra = parser.parse_known_args(argv)
    if extra and args.command != "bench":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.extra = extra
    if args.command in SERVICE_COMMANDS:  # wrong credentials: one clear error, not a hang
        from streamscore.services.access_check import AccessError, check_access  # noqa: PLC0415

        try:
            check_access(_settings())
        except AccessError as exc:
            print(f"streamscore {args.command}: {exc}", file=sys.stderr)
            return 2
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
