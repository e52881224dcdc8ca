"""MLflow for training runs: a local store by default, one run per training, registry versions.

Where runs go: ``Settings.mlflow_tracking_uri`` (default
``sqlite:///<home>/mlflow/mlflow.db``, a file, no server; any SQL URL MLflow
accepts through ``STREAMSCORE_MLFLOW_TRACKING_URI``). The same URI is the
model registry's. Experiments created here keep their artifacts under
``Settings.mlflow_artifact_root`` (default ``<home>/mlflow/artifacts``); an
experiment that already exists keeps its own artifact location.

A run records parameters, metrics (with per-step series, e.g. CP@k per test
day), tags, JSON documents and folders as artifacts. :func:`register_version`
adds a version of a registered model whose source is an artifact folder of
the run (the exported model folder).

MLflow is imported only when a client is opened (seconds of import time).
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streamscore.libs.config import Settings, redact_url

SQLITE_PREFIX = "sqlite:///"
#: MLflow's limit on a parameter value's length.
MAX_PARAM_CHARS = 6000


@dataclass(frozen=True)
class RunSpec:
    """What one training run logs."""

    experiment: str
    run_name: str
    params: Mapping[str, Any]
    metrics: Mapping[str, float]
    tags: Mapping[str, str] = field(default_factory=dict)
    #: name -> [(step, value)]: a metric series (e.g. CP@100 per test day).
    series: Mapping[str, Sequence[tuple[int, float]]] = field(default_factory=dict)
    #: artifact file name -> JSON-able document.
    documents: Mapping[str, Any] = field(default_factory=dict)
    #: artifact folder name -> local folder whose files are logged.
    folders: Mapping[str, Path] = field(default_factory=dict)


@dataclass(frozen=True)
class RunRecord:
    """Where a logged run is."""

    tracking_uri: str
    experiment_id: str
    run_id: str
    artifact_uri: str

    def artifact(self, path: str) -> str:
        """The URI of an artifact of the run."""
        return f"{self.artifact_uri.rstrip('/')}/{path}"


def open_client(settings: Settings) -> Any:
    """An ``MlflowClient`` on the configured store (the SQLite folder created if needed)."""
    from mlflow.tracking import MlflowClient  # noqa: PLC0415 - slow import, only when used

    # MLflow 3.17's SQL store configures a loader option SQLAlchemy 2.1 deprecates: noise, not
    # something an operator can act on.
    warnings.filterwarnings("ignore", message=".*noload.*", category=DeprecationWarning)
    uri = str(settings.mlflow_tracking_uri)
    if uri.startswith(SQLITE_PREFIX):
        Path(uri.removeprefix(SQLITE_PREFIX)).parent.mkdir(parents=True, exist_ok=True)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def experiment_id(client: Any, name: str, artifact_root: Path) -> str:
    """The id of experiment ``name``, created with its artifacts under ``artifact_root``."""
    found = client.get_experiment_by_name(name)
    if found is not None:
        return str(found.experiment_id)
    root = artifact_root.expanduser().resolve() / name
    root.mkdir(parents=True, exist_ok=True)
    return str(client.create_experiment(name, artifact_location=root.as_uri()))


def _param(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str, sort_keys=True)
    return text[:MAX_PARAM_CHARS]


def log_run(client: Any, settings: Settings, spec: RunSpec) -> RunRecord:
    """Log one finished run; a failure while logging marks the run ``FAILED`` and re-raises."""
    from mlflow.entities import Metric, Param, RunTag  # noqa: PLC0415

    assert settings.mlflow_artifact_root is not None  # filled by Settings
    exp = experiment_id(client, spec.experiment, settings.mlflow_artifact_root)
    run = client.create_run(exp, run_name=spec.run_name, tags=dict(spec.tags))
    run_id = str(run.info.run_id)
    now = int(time.time() * 1000)
    try:
        params = [Param(k, _param(v)) for k, v in sorted(spec.params.items())]
        metrics = [Metric(k, float(v), now, 0) for k, v in sorted(spec.metrics.items())]
        for name, points in spec.series.items():
            metrics += [Metric(name, float(v), now, int(step)) for step, v in points]
        # 1. Parameters and metrics in batches (MLflow caps a batch at 100 params).
        for i in range(0, len(params), 100):
            client.log_batch(run_id, params=params[i : i + 100])
        for i in range(0, len(metrics), 1000):
            client.log_batch(run_id, metrics=metrics[i : i + 1000])
        client.log_batch(run_id, tags=[RunTag(k, v) for k, v in sorted(spec.tags.items())])
        # 2. Documents, then folders (the model folder last: it is what gets registered).
        for name, doc in spec.documents.items():
            client.log_dict(run_id, doc, name)
        for name, folder in spec.folders.items():
            client.log_artifacts(run_id, str(folder), name)
    except BaseException:
        client.set_terminated(run_id, status="FAILED")
        raise
    client.set_terminated(run_id, status="FINISHED")
    return RunRecord(
        tracking_uri=redact_url(str(settings.mlflow_tracking_uri)),
        experiment_id=exp,
        run_id=run_id,
        artifact_uri=str(run.info.artifact_uri),
    )


def register_version(
    client: Any,
    name: str,
    run: RunRecord,
    artifact_path: str,
    *,
    tags: Mapping[str, str],
    description: str,
) -> str:
    """Register the run's ``artifact_path`` as a new version of model ``name``; its number."""
    from mlflow.exceptions import MlflowException  # noqa: PLC0415

    try:
        client.create_registered_model(name, description="streamscore models (ONNX + manifest)")
    except MlflowException as exc:
        if "RESOURCE_ALREADY_EXISTS" not in str(exc.error_code):
            raise
    version = client.create_model_version(
        name,
        source=run.artifact(artifact_path),
        run_id=run.run_id,
        tags=dict(tags),
        description=description,
    )
    return str(version.version)
