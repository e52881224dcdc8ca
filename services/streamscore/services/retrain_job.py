"""One retraining of :mod:`.retrainer`: train, register behind the gate, alias, hand over.

:func:`retrain_once` is what the retrainer's worker thread runs for a trigger
decision (steps 1-3 of :mod:`.retrainer`); every failure comes back as an
:class:`Outcome` whose ``outcome`` is a closed set (the metric's label).
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

from streamscore.libs.config import Settings
from streamscore.libs.kafka_config import OffsetReset
from streamscore.libs.labels.dataset import files as dataset_files
from streamscore.libs.labels.spec import DAY_US, DEFAULTS
from streamscore.libs.rollout.late_judge import LateBounds
from streamscore.libs.rollout.progression import Plan
from streamscore.libs.training.params import XGBParams
from streamscore.libs.training.split import DelaySplit
from streamscore.libs.training.triggers import TriggerPolicy
from streamscore.services.model_store import ModelStore, RolloutMode

#: The retrainer's logger: its training lines go where the retrainer's go.
log = logging.getLogger("streamscore.services.retrainer")


@dataclass(frozen=True)
class RetrainerConfig:
    """What one retrainer does (``streamscore retrainer`` options)."""

    stream: str
    policy: TriggerPolicy = field(default_factory=TriggerPolicy)
    #: The label joiner's dataset root (its ``--out``): what a training reads first.
    examples: Path | None = None
    #: A ``streamscore simulate`` folder: the cold start while the dataset is empty.
    sim: Path | None = None
    train_days: int = 7
    delay_days: int = 7
    test_days: int = 7
    params: XGBParams = field(default_factory=XGBParams)
    #: Policy file whose thresholds the parity gate checks (default: the stream's).
    policy_file: Path | None = None
    #: The rollout stage a new challenger starts in.
    mode: RolloutMode = "shadow"
    canary_share: float = 0.05
    #: Straight to champion after the gate (no shadow, no canary).
    auto_promote: bool = False
    #: How the challenger moves on by itself in the scorers (shadow → canary → champion
    #: or approval; :mod:`streamscore.libs.rollout.progression`); ``None``: it stays.
    plan: Plan | None = None
    by: str = "retrainer"
    topic_prefix: str = ""
    offset_reset: OffsetReset = "earliest"
    #: Model store namespace in Redis (scorers read ``streamscore``).
    namespace: str = "streamscore"
    #: The late judge (:mod:`streamscore.libs.rollout.late_judge`): its bounds (``None``:
    #: off), the label joiner's maturity horizon and the cohort bucket, in stream time.
    late_bounds: LateBounds | None = field(default_factory=LateBounds)
    horizon_us: int = DEFAULTS["transactions"].horizon_us
    late_bucket_us: int = DAY_US


@dataclass
class Outcome:
    """How a training ended (``outcome`` is a closed set: the metric's label)."""

    outcome: str
    detail: str = ""
    model_version: str | None = None
    registry_version: str | None = None
    seconds: float = 0.0

    @property
    def trained(self) -> bool:
        return self.outcome in ("ok", "handoff_failed")


def _source(cfg: RetrainerConfig) -> tuple[Path | None, Path | None]:
    """``(examples, sim)``: matured examples when the joiner wrote some, else the cold start."""
    if cfg.examples is not None and dataset_files(cfg.examples, cfg.stream):
        return cfg.examples, None
    if cfg.sim is not None:
        return None, cfg.sim
    where = cfg.examples or "(no --examples)"
    raise FileNotFoundError(f"no labelled examples under {where} and no --sim for a cold start")


def last_matured_day(root: Path, stream: str) -> date | None:
    """The last event day whose examples have all matured in the joiner's dataset.

    Positives are written when their label arrives, negatives only when their
    maturity horizon passes (120 days for chargebacks), so the newest days hold
    mostly positives: a test period there would be biased. Events up to the
    newest matured negative's event time have matured; its day is complete
    only when it is also the data's last day, else the day before is the last
    complete one. ``None``: no negative has matured yet.
    """
    import pyarrow.compute as pc  # noqa: PLC0415

    from streamscore.libs.labels.dataset import read_examples  # noqa: PLC0415

    table = read_examples(root, stream, columns=["event_time", "kind"])
    if table.num_rows == 0:
        return None
    matured = table.filter(pc.equal(table.column("kind"), "matured_negative"))
    if matured.num_rows == 0:
        return None
    newest: date = pc.max(matured.column("event_time")).as_py().date()
    last: date = pc.max(table.column("event_time")).as_py().date()
    return newest if newest == last else newest - timedelta(days=1)


def retrain_once(
    settings: Settings, cfg: RetrainerConfig, store: ModelStore, reason: str
) -> Outcome:
    """Steps 1-3 of the module docstring for one trigger decision."""
    from streamscore.libs.model.export import ParityFailed  # noqa: PLC0415 - heavy imports
    from streamscore.services.model_registry import (  # noqa: PLC0415
        GateNotPassed,
        ModelRefused,
        ModelRegistry,
        RegistryError,
        promote_champion,
    )
    from streamscore.services.model_store import ModelStoreError  # noqa: PLC0415
    from streamscore.services.train_config import TrainConfig  # noqa: PLC0415
    from streamscore.services.trainer import TrainingError, default_version, train  # noqa: PLC0415

    stream, by = cfg.stream, cfg.by
    version = f"{default_version(stream)}-{secrets.token_hex(2)}"
    try:  # 1. train
        examples, sim = _source(cfg)
        train_start = None
        if examples is not None:  # the split ends on the last fully matured day
            frontier = last_matured_day(examples, stream)
            if frontier is None:
                return Outcome("no_data", "no example has matured yet (no negatives)", version)
            train_start = DelaySplit.ending(
                frontier,
                train_days=cfg.train_days,
                delay_days=cfg.delay_days,
                test_days=cfg.test_days,
            ).train_start
        tc = TrainConfig(
            stream=stream,
            examples=examples,
            sim=sim,
            version=version,
            register=False,
            track=True,
            params=cfg.params,
            train_days=cfg.train_days,
            delay_days=cfg.delay_days,
            test_days=cfg.test_days,
            train_start=train_start,
            policy=cfg.policy_file,
        )
        result = train(tc, settings, progress=lambda m: log.info("%s train: %s", stream, m))
    except (TrainingError, FileNotFoundError, ValueError) as exc:
        return Outcome("no_data", str(exc), version)
    except ParityFailed as exc:
        return Outcome("gate_failed", str(exc), version)
    registry = ModelRegistry.open(settings)
    why = f"retrainer: {reason}"
    try:  # 2. register (the gate again) and alias
        v = registry.register(
            result.model_dir, stream=stream, by=by, reason=why, run_id=result.run_id
        )
        registry.set_alias(stream, "challenger", v.version, by=by, reason=why)
        registry.set_alias(stream, cfg.mode, v.version, by=by, reason=why)
    except GateNotPassed as exc:
        return Outcome("gate_failed", str(exc), version)
    except (RegistryError, ModelRefused) as exc:
        return Outcome("refused", str(exc), version)
    try:  # 3. hand over to serving
        share = cfg.canary_share if cfg.mode == "canary" else 0.0
        store.set_challenger(
            stream, result.model_dir, mode=cfg.mode, share=share, by=by, reason=why, plan=cfg.plan
        )
        if cfg.auto_promote:
            promote_champion(
                registry, store, stream, v.version, by=by, reason=f"auto-promoted: {why}"
            )
    except (ModelStoreError, ModelRefused, RegistryError) as exc:
        return Outcome("handoff_failed", str(exc), version, v.version)
    q = result.quality
    detail = (
        f"v{v.version} {version}: AUC {q.auc_roc:.3f} AP {q.average_precision:.3f} "
        f"{'champion (auto)' if cfg.auto_promote else 'challenger (' + cfg.mode + ')'}"
    )
    return Outcome("ok", detail, version, v.version)
