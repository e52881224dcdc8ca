"""``streamscore model``: the MLflow registry from the command line.

- ``model register FOLDER --reason R`` — a gated model folder as a new version
  (``--alias A`` also points an alias at it);
- ``model alias ALIAS VERSION --reason R`` (``--clear`` removes the alias);
- ``model show`` — versions, aliases, gate summaries;
- ``model audit`` — every alias move (who, when, why, gate), oldest first;
- ``model promote [VERSION] --reason R`` — the explicit approval: ``VERSION``
  (default: the challenger) becomes the champion in the registry and the
  active model of the model store (scorers adopt it between batches).

Who acts is ``--by`` (default: the login name of the process).
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from typing import Any

from streamscore.libs.config import Settings
from streamscore.libs.topics import STREAMS


def _by(args: argparse.Namespace) -> str:
    return str(args.by or getpass.getuser())


def cmd_model(args: argparse.Namespace) -> int:
    """Dispatch ``streamscore model <action>``; registry refusals exit 1 with the reason."""
    from streamscore.services.model_loader import ModelRefused  # noqa: PLC0415
    from streamscore.services.model_registry import ModelRegistry, RegistryError  # noqa: PLC0415
    from streamscore.services.model_store import ModelStoreError  # noqa: PLC0415

    settings = Settings()
    try:
        registry = ModelRegistry.open(settings)
        return int(_ACTIONS[args.model_command](args, settings, registry))
    except (RegistryError, ModelRefused, ModelStoreError) as exc:
        print(f"model {args.model_command}: {exc}", file=sys.stderr)
        return 1


def _register(args: argparse.Namespace, _settings: Settings, registry: Any) -> int:
    v = registry.register(args.folder, stream=args.stream, by=_by(args), reason=args.reason)
    print(f"{v.name} v{v.version}: {v.model_version} (gate {json.dumps(v.gate)})")
    if args.alias:
        e = registry.set_alias(args.stream, args.alias, v.version, by=_by(args), reason=args.reason)
        print(e.line())
    return 0


def _alias(args: argparse.Namespace, _settings: Settings, registry: Any) -> int:
    if args.clear:
        entry = registry.clear_alias(args.stream, args.alias, by=_by(args), reason=args.reason)
        print(entry.line() if entry is not None else f"{args.alias} was not set")
        return 0
    if args.version is None:
        print("model alias: give a VERSION or --clear", file=sys.stderr)
        return 2
    print(
        registry.set_alias(
            args.stream, args.alias, args.version, by=_by(args), reason=args.reason
        ).line()
    )
    return 0


def _show(args: argparse.Namespace, _settings: Settings, registry: Any) -> int:
    from streamscore.services.model_registry import registered_name  # noqa: PLC0415

    print(registered_name(args.stream))
    for alias, v in registry.aliases(args.stream).items():
        print(f"  {alias:10s} {'v' + v.version + ' ' + v.model_version if v else '-'}")
    for v in registry.versions(args.stream):
        gate = v.gate
        print(
            f"  v{v.version:<4s} {v.model_version:32s} onnx {v.onnx_sha256[:12]} "
            f"gate max|diff|={gate.get('max_abs_diff', float('nan')):.1e} "
            f"flips={int(gate.get('flips', -1))} aliases={','.join(v.aliases) or '-'} "
            f"by {v.tags.get('streamscore.registered_by', '?')}"
        )
    return 0


def _audit(args: argparse.Namespace, _settings: Settings, registry: Any) -> int:
    for e in registry.audit(args.stream):
        print(e.to_json() if args.json else e.line())
    return 0


def _promote(args: argparse.Namespace, settings: Settings, registry: Any) -> int:
    from streamscore.services.clients import make_redis  # noqa: PLC0415
    from streamscore.services.model_registry import promote_champion  # noqa: PLC0415
    from streamscore.services.model_store import ModelStore  # noqa: PLC0415

    version = args.version
    if version is None:
        challenger = registry.by_alias(args.stream, "challenger")
        if challenger is None:
            print("model promote: no challenger; give a VERSION", file=sys.stderr)
            return 1
        version = challenger.version
    store = ModelStore(make_redis(settings, timeout_s=5.0), namespace=args.namespace)
    entry, ref = promote_champion(
        registry, store, args.stream, version, by=_by(args), reason=args.reason
    )
    print(entry.line())
    print(f"model store: {args.stream} now serves {ref.version} from {ref.path}")
    return 0


_ACTIONS = {
    "register": _register,
    "alias": _alias,
    "show": _show,
    "audit": _audit,
    "promote": _promote,
}


def add_model_command(sub: Any) -> None:
    """Register ``streamscore model`` on ``sub``."""
    from streamscore.services.model_registry import ALIASES  # noqa: PLC0415

    model = sub.add_parser("model", help="model registry: register, alias, show, audit, promote")
    msub = model.add_subparsers(dest="model_command", required=True)

    def common(p: argparse.ArgumentParser, *, acts: bool) -> None:
        p.add_argument("--stream", default="transactions", choices=sorted(STREAMS))
        if acts:
            p.add_argument("--reason", required=True, help="why (recorded in the audit)")
            p.add_argument("--by", help="who (default: the login name)")
        p.set_defaults(func=cmd_model)

    reg = msub.add_parser("register", help="register a gated model folder as a new version")
    reg.add_argument("folder")
    reg.add_argument("--alias", choices=ALIASES, help="also point this alias at it")
    common(reg, acts=True)
    alias = msub.add_parser("alias", help="point an alias at a version (audited)")
    alias.add_argument("alias", choices=ALIASES)
    alias.add_argument("version", nargs="?", help="registry version number")
    alias.add_argument("--clear", action="store_true", help="remove the alias")
    common(alias, acts=True)
    common(msub.add_parser("show", help="versions and aliases"), acts=False)
    audit = msub.add_parser("audit", help="every alias move: who, when, why, gate")
    audit.add_argument("--json", action="store_true", help="one JSON object per line")
    common(audit, acts=False)
    promote = msub.add_parser(
        "promote", help="approve: VERSION (default: the challenger) becomes champion and serves"
    )
    promote.add_argument("version", nargs="?")
    promote.add_argument(
        "--namespace", default="streamscore", help="model store namespace in Redis"
    )
    common(promote, acts=True)


def cmd_retrainer(args: argparse.Namespace) -> int:
    """``streamscore retrainer``: run until SIGTERM/SIGINT (its trigger and training
    lines on stderr)."""
    import logging  # noqa: PLC0415
    from dataclasses import replace  # noqa: PLC0415
    from pathlib import Path  # noqa: PLC0415

    from streamscore.libs.labels.spec import default_spec, parse_duration  # noqa: PLC0415
    from streamscore.libs.rollout.late_judge import LateBounds  # noqa: PLC0415
    from streamscore.libs.rollout.progression import Plan  # noqa: PLC0415
    from streamscore.libs.training.params import XGBParams  # noqa: PLC0415
    from streamscore.libs.training.triggers import TriggerPolicy  # noqa: PLC0415
    from streamscore.services.retrainer import (  # noqa: PLC0415
        Retrainer,
        RetrainerConfig,
        run_retrainer,
    )

    policy = TriggerPolicy(
        schedule_hours=args.schedule_hours or None,
        on_alert=not args.no_alert_trigger,
        min_new_examples=args.min_new_examples or None,
        min_interval_hours=args.min_interval_hours,
        alert_matured_hours=args.alert_matured_hours,
    )
    params = XGBParams()
    if args.n_estimators is not None:
        params = replace(params, n_estimators=args.n_estimators)
    params = replace(params, n_jobs=args.jobs)
    cfg = RetrainerConfig(
        stream=args.stream,
        policy=policy,
        examples=Path(args.examples) if args.examples else None,
        sim=Path(args.sim) if args.sim else None,
        train_days=args.train_days,
        delay_days=args.delay_days,
        test_days=args.test_days,
        params=params,
        policy_file=Path(args.policy) if args.policy else None,
        mode=args.mode,
        canary_share=args.canary_share,
        auto_promote=args.auto_promote,
        plan=Plan(
            shadow_events=args.shadow_events,
            canary_events=args.canary_events,
            canary_share=args.canary_share,
            promote=args.promote,
            max_score_ks=args.max_score_ks,
            max_rate_shift=args.max_rate_shift,
        )
        if args.progress
        else None,
        by=args.by,
        topic_prefix=args.topic_prefix,
        offset_reset=args.offset_reset,
        namespace=args.namespace,
        late_bounds=None
        if args.no_late_judge
        else LateBounds(min_flagged=args.late_min_flagged, min_drop=args.late_min_drop),
        horizon_us=default_spec(args.stream, horizon=args.horizon).horizon_us,
        late_bucket_us=parse_duration(args.late_bucket),
    )

    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("streamscore.services.retrainer").setLevel(logging.INFO)

    def ready(r: Retrainer) -> None:
        print(f"retrainer {args.stream}: {r.alert_topic} + {r.examples_topic}, ready", flush=True)

    stats = run_retrainer(Settings(), cfg, on_ready=ready)
    outcomes = ", ".join(o.outcome for o in stats.outcomes) or "none"
    print(f"retrainer {args.stream}: {stats.consumed:,} records, trainings: {outcomes}")
    return 0


def add_retrainer_command(sub: Any) -> None:
    """Register ``streamscore retrainer`` on ``sub``."""
    r = sub.add_parser(
        "retrainer",
        help="retrain on drift / new labels / schedule -> gated challenger, until stopped",
    )
    r.add_argument("--stream", required=True, choices=["transactions"])
    r.add_argument("--examples", help="the label joiner's dataset root (its --out)")
    r.add_argument("--sim", help="`streamscore simulate` folder: cold start without examples")
    r.add_argument(
        "--schedule-hours", type=float, default=7 * 24.0, help="stream time (0: no schedule)"
    )
    r.add_argument("--no-alert-trigger", action="store_true", help="ignore retrain_trigger")
    r.add_argument(
        "--alert-matured-hours",
        type=float,
        default=0.0,
        help="a retrain_trigger waits until labels this far past the drift's confirmation "
        "have matured (stream time)",
    )
    r.add_argument(
        "--min-new-examples", type=int, default=50_000, help="new labelled examples (0: off)"
    )
    r.add_argument(
        "--min-interval-hours", type=float, default=24.0, help="stream time between trainings"
    )
    r.add_argument("--train-days", type=int, default=7)
    r.add_argument("--delay-days", type=int, default=7)
    r.add_argument("--test-days", type=int, default=7)
    r.add_argument("--n-estimators", type=int, default=None)
    r.add_argument("--jobs", type=int, default=2, help="XGBoost threads")
    r.add_argument("--policy", help="policy JSON whose thresholds the parity gate checks")
    r.add_argument("--mode", choices=["shadow", "canary"], default="shadow")
    r.add_argument("--canary-share", type=float, default=0.05)
    r.add_argument(
        "--auto-promote", action="store_true", help="straight to champion (no shadow, no canary)"
    )
    r.add_argument(
        "--progress",
        action="store_true",
        help="the challenger moves on by itself in the scorers: shadow -> canary -> champion",
    )
    r.add_argument("--shadow-events", type=int, default=2000, help="clean shadow decisions")
    r.add_argument("--canary-events", type=int, default=2000, help="clean canary decisions")
    r.add_argument(
        "--promote",
        choices=["approval", "auto"],
        default="approval",
        help="after a clean canary: wait for `model promote` (approval) or promote (auto)",
    )
    r.add_argument("--max-score-ks", type=float, default=None, help="shadow score KS bound")
    r.add_argument(
        "--max-rate-shift",
        type=float,
        default=None,
        help="this challenger's bound on an outcome's rate shift (default: the scorers' 0.05)",
    )
    r.add_argument(
        "--no-late-judge",
        action="store_true",
        help="never re-judge a promotion on its matured canary cohort's realised precision",
    )
    r.add_argument(
        "--horizon", help="the label joiner's maturity horizon (its --horizon; stream default)"
    )
    r.add_argument("--late-bucket", default="1d", help="late judge cohort bucket (stream time)")
    r.add_argument(
        "--late-min-flagged", type=int, default=30, help="flagged events per side to judge"
    )
    r.add_argument(
        "--late-min-drop", type=float, default=0.05, help="precision drop that rolls back"
    )
    r.add_argument("--by", default="retrainer", help="who the audit names")
    r.add_argument("--topic-prefix", default="", help="namespace of topics, group and state")
    r.add_argument("--offset-reset", default="earliest", choices=["earliest", "latest"])
    r.add_argument("--namespace", default="streamscore", help="model store namespace in Redis")
    r.set_defaults(func=cmd_retrainer)
