"""What a ``streamscore train`` run is asked to do: :class:`TrainConfig` and its command line.

Kept apart from :mod:`.trainer` so that building the ``streamscore`` parser
does not import XGBoost, ONNX or pyarrow.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path

from streamscore.libs.training.params import XGBParams

#: Streams the trainer knows a label and a card key for.
TRAINABLE = ("transactions",)


@dataclass(frozen=True)
class TrainConfig:
    """One training run."""

    stream: str = "transactions"
    sim: Path | None = None
    examples: Path | None = None
    #: Model folder (default: ``<models_root>/<stream>/<version>``).
    out: Path | None = None
    version: str | None = None
    register: bool = False
    #: Log to MLflow at all (the quality benchmark turns it off).
    track: bool = True
    experiment: str | None = None
    params: XGBParams = field(default_factory=XGBParams)
    train_start: date | None = None
    train_days: int = 7
    delay_days: int = 7
    test_days: int = 7
    top_k: int = 100
    rebuild: bool = False
    #: Policy file whose thresholds the parity gate checks (default: ``policies/<stream>.json``).
    policy: Path | None = None

    @property
    def model_name(self) -> str:
        return f"streamscore-{self.stream}"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``streamscore train``."""
    parser.add_argument("--stream", default="transactions", choices=TRAINABLE)
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--sim", help="folder written by `streamscore simulate` (cold start)")
    src.add_argument(
        "--examples",
        help="folder of labelled-examples Parquet files (training-set columns + `label`)",
    )
    parser.add_argument("--out", help="model folder (default: <models_root>/<stream>/<version>)")
    parser.add_argument("--version", help="model version (default: <stream>-YYYYMMDD-HHMMSS)")
    parser.add_argument(
        "--register", action="store_true", help="register the model in the MLflow registry"
    )
    parser.add_argument("--no-mlflow", action="store_true", help="do not log to MLflow")
    parser.add_argument("--experiment", help="MLflow experiment (default: streamscore-<stream>)")
    parser.add_argument(
        "--train-start",
        type=date.fromisoformat,
        help="first training day, YYYY-MM-DD (default: the split ending on the last day)",
    )
    parser.add_argument("--train-days", type=int, default=7)
    parser.add_argument("--delay-days", type=int, default=7, help="the gap: the label delay")
    parser.add_argument("--test-days", type=int, default=7)
    parser.add_argument("--top-k", type=int, default=100, help="k of card precision@k")
    parser.add_argument("--rebuild", action="store_true", help="rebuild the --sim training set")
    parser.add_argument("--policy", help="policy JSON whose thresholds the parity gate checks")
    d = XGBParams()
    parser.add_argument("--n-estimators", type=int, default=d.n_estimators)
    parser.add_argument("--max-depth", type=int, default=d.max_depth)
    parser.add_argument("--learning-rate", type=float, default=d.learning_rate)
    parser.add_argument("--tree-method", default=d.tree_method, choices=("exact", "hist", "approx"))
    parser.add_argument("--jobs", type=int, default=d.n_jobs, help="XGBoost threads")
    parser.add_argument("--seed", type=int, default=d.random_state)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """A :class:`TrainConfig` from parsed arguments."""
    params = replace(
        XGBParams(),
        n_estimators=args.n_estimators,
        max_depth=args.max_depth,
        learning_rate=args.learning_rate,
        tree_method=args.tree_method,
        n_jobs=args.jobs,
        random_state=args.seed,
    )
    return TrainConfig(
        stream=args.stream,
        sim=Path(args.sim) if args.sim else None,
        examples=Path(args.examples) if args.examples else None,
        out=Path(args.out) if args.out else None,
        version=args.version,
        register=args.register,
        track=not args.no_mlflow,
        experiment=args.experiment,
        params=params,
        train_start=args.train_start,
        train_days=args.train_days,
        delay_days=args.delay_days,
        test_days=args.test_days,
        top_k=args.top_k,
        rebuild=args.rebuild,
        policy=Path(args.policy) if args.policy else None,
    )
