"""``streamscore rollout``: the champion / challenger state of a stream and the shadow report.

Neither is long-running. The challenger is set through the model registry
(``streamscore model alias challenger|shadow|canary``) or
:meth:`~streamscore.services.model_store.ModelStore.set_challenger`; scorers run
it and roll a failing canary back by themselves (:mod:`.rollout`).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from streamscore.libs.topics import STREAMS
from streamscore.services.cli_services import settings_from_env


def cmd_rollout_status(args: argparse.Namespace) -> int:
    from streamscore.services.clients import make_redis  # noqa: PLC0415
    from streamscore.services.model_store import ModelStore  # noqa: PLC0415
    from streamscore.services.rollout_report import status  # noqa: PLC0415

    store = ModelStore(make_redis(settings_from_env()))
    print(json.dumps(status(store, args.stream), indent=2, default=str))
    return 0


def cmd_rollout_report(args: argparse.Namespace) -> int:
    from streamscore.services.rollout_report import as_json, render, shadow_report  # noqa: PLC0415

    try:
        comparison, counts = shadow_report(
            settings_from_env(), args.stream, prefix=args.topic_prefix, version=args.version
        )
    except (RuntimeError, TimeoutError) as exc:  # a missing topic, a partition not read
        print(f"cannot read the topics: {exc}")
        return 2
    if args.json:
        print(as_json(comparison, counts))
    elif comparison is None:
        print(f"nothing to compare: {counts}")
    else:
        print(render(comparison))
    return 0 if comparison is not None else 1


def add_rollout_command(sub: Any) -> None:
    """Register ``streamscore rollout status|report``."""
    ro = sub.add_parser("rollout", help="champion / challenger: state and shadow report")
    rsub = ro.add_subparsers(dest="rollout_command", required=True)
    st = rsub.add_parser("status", help="champion, challenger (mode, share) and its log")
    st.add_argument("--stream", default="transactions", choices=sorted(STREAMS))
    st.set_defaults(func=cmd_rollout_status)
    rep = rsub.add_parser(
        "report",
        help="challenger (shadow topic) vs champion (decision topic) on the same events: "
        "decision mixes, flips, score quantiles, KS statistic",
    )
    rep.add_argument("--stream", default="transactions", choices=sorted(STREAMS))
    rep.add_argument("--version", help="challenger version (default: the most recorded)")
    rep.add_argument("--topic-prefix", default="", help="namespace of the topics")
    rep.add_argument("--json", action="store_true", help="print one JSON object")
    rep.set_defaults(func=cmd_rollout_report)
