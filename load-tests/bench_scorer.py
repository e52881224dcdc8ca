"""``streamscore bench scorer``: the scorer stage alone, features given (DESIGN.md §5: ≥ 50k/s).

Times :meth:`Scorer.handle` on micro-batches of already decoded feature vectors:
model input matrix, ONNX scoring, policy, reasons for the non-approvals, the
decision and scored-log records encoded. The baseline is the ONNX session
alone on the same rows, so the ratio is the share of the stage that the model
is (and 1/ratio what the rest costs). No Kafka: the broker's cost is the e2e
benchmark's.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np

from streamscore.libs.contracts.features import TransactionFeatures
from streamscore.libs.contracts.samples import sample_events
from streamscore.libs.features.definitions import feature_schema_hash, model_features
from streamscore.libs.model.synthetic import synthetic_rows, train_synthetic_model
from streamscore.services.scorer import Scorer, default_policy, load_model
from streamscore.services.stream_processor import Decoded

NAMES = model_features("transactions")


def parse_args(argv: list[str]) -> dict[str, Any]:
    p = argparse.ArgumentParser(prog="streamscore bench scorer")
    p.add_argument("--events", type=int, default=50_000)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--trees", type=int, default=100)
    p.add_argument("--depth", type=int, default=5)
    return vars(p.parse_args(argv))


def run(events: int = 50_000, batch: int = 256, trees: int = 100, depth: int = 5) -> dict[str, Any]:
    rng = np.random.default_rng(1)
    policy = default_policy("transactions")
    with tempfile.TemporaryDirectory() as tmp:
        train_synthetic_model(
            Path(tmp),
            name="bench",
            version="bench-1",
            thresholds=policy.thresholds,
            trees=trees,
            depth=depth,
        )
        session, reasons = load_model(Path(tmp), "transactions")

    X = synthetic_rows(rng, events)
    now = datetime.now(tz=UTC)
    decoded = []
    for i, ev in enumerate(sample_events("transactions", events, seed=3)):
        values = {n: (None if np.isnan(v) else float(v)) for n, v in zip(NAMES, X[i], strict=True)}
        fv = TransactionFeatures(
            event=ev,
            values=values,  # type: ignore[arg-type]
            feature_statuses={"customer_tx": "PRESENT", "terminal_risk": "PRESENT"},
            feature_freshness={"customer_tx": 1.0, "terminal_risk": 5.0},
            computed_at=now,
            schema_hash=feature_schema_hash("transactions"),
        )
        decoded.append(
            Decoded(
                "features.transactions",
                0,
                i,
                ev.customer_id.encode(),  # type: ignore[attr-defined]
                int(now.timestamp() * 1000),
                fv,
            )
        )
    batches = [decoded[i : i + batch] for i in range(0, events, batch)]
    scorer = Scorer("transactions", policy=policy, model=session, explainer=reasons)
    scorer.handle(batches[0])  # warm-up

    stage_runs, model_runs, flagged = [], [], 0
    for _ in range(3):
        started = time.perf_counter()
        for b in batches:
            out = scorer.handle(b)
        stage_runs.append((time.perf_counter() - started) / events)
        started = time.perf_counter()
        for i in range(0, events, batch):
            session.predict(X[i : i + batch])
        model_runs.append((time.perf_counter() - started) / events)
    flagged = int(np.sum(session.predict(X) >= policy.thresholds[0]))
    stage_us, model_us = statistics.median(stage_runs) * 1e6, statistics.median(model_runs) * 1e6
    return {
        "bench": "scorer",
        "conditions": {
            "events": events,
            "batch": batch,
            "model": f"xgboost {trees} trees depth {depth}, {len(NAMES)} features, ONNX",
            "non_approvals_explained": f"{flagged} of {events}",
            "reasons": "approx (Saabas) contributions, non-approvals only",
            "onnxruntime": version("onnxruntime"),
            "policy": policy.version,
            "records_per_event": len(out) // len(batches[-1]),
        },
        "rows": [
            {
                "metric": "scorer stage events/s (matrix, model, policy, reasons, encode)",
                "value": round(1e6 / stage_us),
                "unit": "events/s",
                "baseline_name": "ONNX session alone, same batches",
                "baseline": round(1e6 / model_us),
                "ratio": round(model_us / stage_us, 3),
                "better": "higher",
            },
            {
                "metric": "scorer stage µs/event",
                "value": round(stage_us, 2),
                "unit": "µs",
                "better": "lower",
            },
        ],
    }
