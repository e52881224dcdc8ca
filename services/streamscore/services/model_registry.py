"""The MLflow model registry of streamscore: gated versions, aliases, and an audit of every move.

One registered model per stream, ``streamscore-<stream>``, in the MLflow store
of ``Settings.mlflow_tracking_uri`` (a local SQLite file by default, any SQL
URL MLflow accepts; see :mod:`.tracking`).

**Versions.** :meth:`ModelRegistry.register` adds a model folder (``model.onnx``,
``manifest.json``, ``parity.json``, as ``streamscore train`` exports it) as a new
version, and only when its parity gate passed:

1. The folder must load with the serving loader (manifest of the live feature
   schema, ONNX hash equal to the manifest's: FAULTS.md M5, M7).
2. The gate must have passed, in the manifest (``parity.passed`` = 1, zero
   decision flips, max |diff| within the tolerance) and in ``parity.json``
   beside it (the full report): otherwise :class:`GateNotPassed`, nothing is
   written.
3. A model version (the manifest's name for it) names one model: registering
   the same folder again returns the existing registry version, another ONNX
   file under a known version is refused.
4. The folder is logged as the ``model`` artifact of an MLflow run (the
   training run when given, else a run of its own with the manifest and the
   gate report as documents), and the registry version points at it; its
   tags carry the model version, hashes, the gate summary, the full gate
   report and the manifest, and the folder on the serving hosts.

**Aliases** ``champion``, ``challenger``, ``shadow``, ``canary`` name versions
(MLflow's ``set_registered_model_alias``). :meth:`ModelRegistry.set_alias` and
:meth:`ModelRegistry.clear_alias` record every move, before applying it, as:

- an **audit entry** (who, when, why, from which version to which, the gate
  report of the version it moves to): a tag ``audit.<UTC time>.<random>`` of
  the registered model. Entries are only ever added (the keys sort by time
  and never collide), so the list reads back in order
  (:meth:`ModelRegistry.audit`, ``streamscore model audit``);
- tags on the version it moves to: ``alias.<alias>.set_by`` / ``set_at`` /
  ``reason``.

MLflow itself does not forbid deleting a tag: the audit is append-only by
this module's contract, and as tamper-proof as access to the store.
"""

from __future__ import annotations

import json
import math
import secrets
import shutil
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from streamscore.libs.config import Settings
from streamscore.libs.model.export import PARITY_FILE
from streamscore.libs.model.manifest import MANIFEST_FILE, ModelManifest
from streamscore.services import tracking
from streamscore.services.model_loader import ModelRefused, open_model
from streamscore.services.model_store import ModelRef, ModelStore

ALIASES = ("champion", "challenger", "shadow", "canary")
AUDIT_PREFIX = "audit."
#: Tags of a registry version.
TAG_MODEL_VERSION = "streamscore.model_version"
TAG_ONNX = "onnx_sha256"
TAG_SCHEMA = "feature_schema_hash"
TAG_FOLDER = "streamscore.folder"
TAG_GATE = "streamscore.gate"
TAG_GATE_REPORT = "streamscore.gate_report"
TAG_MANIFEST = "streamscore.manifest"
TAG_REGISTERED_BY = "streamscore.registered_by"
TAG_REGISTERED_REASON = "streamscore.registered_reason"


class RegistryError(Exception):
    """A registry operation that cannot apply (unknown version or alias, a conflicting model)."""


class GateNotPassed(RegistryError):  # noqa: N818 (the gate's verdict)
    """The folder's parity gate did not pass (or its report is missing): not registered."""


def registered_name(stream: str) -> str:
    """The registered model of a stream.

    >>> registered_name("transactions")
    'streamscore-transactions'
    """
    return f"streamscore-{stream}"


def _now() -> datetime:
    return datetime.now(tz=UTC)


@dataclass(frozen=True)
class AuditEntry:
    """One alias move: ``version`` None means the alias was cleared."""

    at: datetime
    stream: str
    alias: str
    version: str | None
    model_version: str | None
    previous: str | None
    by: str
    reason: str
    #: The gate summary of the version the alias moves to (empty when cleared).
    gate: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        d = asdict(self)
        d["at"] = self.at.isoformat()
        return json.dumps(d, sort_keys=True)

    @classmethod
    def from_json(cls, raw: str) -> AuditEntry:
        d = json.loads(raw)
        d["at"] = datetime.fromisoformat(d["at"])
        return cls(**d)

    def line(self) -> str:
        """One readable line (``streamscore model audit``)."""
        to = f"v{self.version} ({self.model_version})" if self.version else "cleared"
        frm = f"v{self.previous}" if self.previous else "-"
        gate = ""
        if self.gate:
            gate = (
                f" gate: passed={bool(self.gate.get('passed'))} "
                f"max|diff|={float(self.gate.get('max_abs_diff', math.nan)):.1e} "
                f"flips={int(self.gate.get('flips', -1))}"
            )
        return (
            f"{self.at:%Y-%m-%d %H:%M:%S}Z {self.alias:10s} {frm:>5s} -> {to} "
            f"by {self.by}: {self.reason}{gate}"
        )


@dataclass(frozen=True)
class RegisteredVersion:
    """A registry version and what streamscore stored with it."""

    name: str
    version: str
    model_version: str
    onnx_sha256: str
    folder: str
    source: str
    run_id: str | None
    aliases: tuple[str, ...]
    gate: dict[str, Any]
    tags: dict[str, str]

    @classmethod
    def of(cls, mv: Any) -> RegisteredVersion:
        tags = dict(mv.tags or {})
        return cls(
            name=str(mv.name),
            version=str(mv.version),
            model_version=tags.get(TAG_MODEL_VERSION, ""),
            onnx_sha256=tags.get(TAG_ONNX, ""),
            folder=tags.get(TAG_FOLDER, ""),
            source=str(mv.source),
            run_id=mv.run_id or None,
            aliases=tuple(sorted(mv.aliases or ())),
            gate=json.loads(tags.get(TAG_GATE, "{}")),
            tags=tags,
        )


def check_gate(folder: Path, stream: str) -> tuple[ModelManifest, dict[str, Any]]:
    """The verified manifest and the full gate report of ``folder``, or an error.

    Steps 1-2 of the module docstring: :class:`ModelRefused` when the folder does
    not load for ``stream``, :class:`GateNotPassed` when the gate did not pass.
    """
    manifest, _session, _reasons = open_model(folder, stream)  # 1. serving loader
    p = manifest.parity
    problems = []
    if p.get("passed") != 1.0:
        problems.append(f"manifest says passed={p.get('passed')}")
    if p.get("flips", math.inf) != 0.0:
        problems.append(f"{p.get('flips')} decision flips")
    diff, tol = p.get("max_abs_diff", math.inf), p.get("tolerance", -math.inf)
    if not diff <= tol:
        problems.append(f"max |diff| {diff} above the tolerance {tol}")
    report_file = folder / PARITY_FILE
    if not report_file.exists():
        problems.append(f"no {PARITY_FILE} (the gate report) beside the model")
        report: dict[str, Any] = {}
    else:
        report = json.loads(report_file.read_text())
        if report.get("passed") is not True or report.get("failures"):
            problems.append(f"{PARITY_FILE} failures: {report.get('failures')}")
    if problems:
        raise GateNotPassed(
            f"{folder}: parity gate not passed ({'; '.join(problems)}): not registered"
        )
    return manifest, report


class ModelRegistry:
    """Versions, aliases and the audit of the streams' registered models (module docstring)."""

    def __init__(self, client: Any, settings: Settings) -> None:
        self.client = client
        self.settings = settings

    @classmethod
    def open(cls, settings: Settings) -> ModelRegistry:
        """A registry on the configured MLflow store."""
        return cls(tracking.open_client(settings), settings)

    # Versions ------------------------------------------------------------------------------

    def _ensure_model(self, name: str) -> None:
        from mlflow.exceptions import MlflowException  # noqa: PLC0415

        try:
            self.client.create_registered_model(
                name, description="streamscore models (ONNX + manifest), gated by parity"
            )
        except MlflowException as exc:
            if "RESOURCE_ALREADY_EXISTS" not in str(exc.error_code):
                raise

    def versions(self, stream: str) -> list[RegisteredVersion]:
        """Every version of the stream's model, oldest first (with their aliases: MLflow's
        search leaves them out, the registered model has them)."""
        from mlflow.exceptions import MlflowException  # noqa: PLC0415

        name = registered_name(stream)
        try:
            held = dict(self.client.get_registered_model(name).aliases or {})
        except MlflowException:
            return []
        out = []
        for mv in self.client.search_model_versions(f"name='{name}'"):
            v = RegisteredVersion.of(mv)
            aliases = tuple(sorted(a for a, n in held.items() if str(n) == v.version))
            out.append(replace(v, aliases=aliases))
        return sorted(out, key=lambda v: int(v.version))

    def version(self, stream: str, version: str) -> RegisteredVersion:
        """One version by number (:class:`RegistryError` when unknown)."""
        from mlflow.exceptions import MlflowException  # noqa: PLC0415

        try:
            mv = self.client.get_model_version(registered_name(stream), str(version))
        except MlflowException as exc:
            raise RegistryError(f"{registered_name(stream)} has no version {version}") from exc
        return RegisteredVersion.of(mv)

    def by_alias(self, stream: str, alias: str) -> RegisteredVersion | None:
        """The version an alias names (``None``: unset)."""
        from mlflow.exceptions import MlflowException  # noqa: PLC0415

        _check_alias(alias)
        try:
            mv = self.client.get_model_version_by_alias(registered_name(stream), alias)
        except MlflowException:
            return None
        return RegisteredVersion.of(mv)

    def register(
        self,
        folder: str | Path,
        *,
        stream: str,
        by: str,
        reason: str,
        run_id: str | None = None,
    ) -> RegisteredVersion:
        """Register a gated model folder as a new version (steps 1-4 of the module docstring)."""
        folder = Path(folder).resolve()
        manifest, report = check_gate(folder, stream)  # 1.-2.
        name = registered_name(stream)
        for v in self.versions(stream):  # 3.
            if v.model_version == manifest.model_version:
                if v.onnx_sha256 == manifest.onnx_sha256:
                    return v
                raise RegistryError(
                    f"{name}: model version {manifest.model_version} is already registered as "
                    f"v{v.version} with another model ({v.onnx_sha256[:12]}, not "
                    f"{manifest.onnx_sha256[:12]})"
                )
        self._ensure_model(name)
        manifest_doc = json.loads(manifest.to_json())
        if run_id is None:  # 4. a run of its own holding the folder
            assert self.settings.mlflow_artifact_root is not None
            run = tracking.log_run(
                self.client,
                self.settings,
                tracking.RunSpec(
                    experiment=name,
                    run_name=f"register {manifest.model_version}",
                    params={"stream": stream, "model_version": manifest.model_version},
                    metrics=dict(manifest.metrics),
                    tags={"streamscore.stream": stream, TAG_REGISTERED_BY: by},
                    documents={"gate_report.json": report, "manifest.json": manifest_doc},
                    folders={"model": folder},
                ),
            )
            run_id, source = run.run_id, run.artifact("model")
        else:  # the training run, which logged the folder as ``model``
            info = self.client.get_run(run_id).info
            source = f"{str(info.artifact_uri).rstrip('/')}/model"
            self.client.log_dict(run_id, report, "gate_report.json")
        tags = {
            TAG_MODEL_VERSION: manifest.model_version,
            TAG_ONNX: manifest.onnx_sha256,
            TAG_SCHEMA: manifest.feature_schema_hash,
            TAG_FOLDER: str(folder),
            TAG_GATE: json.dumps(manifest.parity, sort_keys=True),
            TAG_GATE_REPORT: json.dumps(report, sort_keys=True),
            TAG_MANIFEST: json.dumps(manifest_doc, sort_keys=True),
            TAG_REGISTERED_BY: by,
            TAG_REGISTERED_REASON: reason,
        }
        mv = self.client.create_model_version(
            name,
            source=source,
            run_id=run_id,
            tags=tags,
            description=f"{manifest.model_version}: trained {manifest.trained_from:%Y-%m-%d}.."
            f"{manifest.trained_to:%Y-%m-%d}; registered by {by}: {reason}",
        )
        return self.version(stream, str(mv.version))

    def folder_of(self, v: RegisteredVersion, stream: str) -> Path:
        """A local folder holding the version's model.

        The folder it was registered from when it still holds the same ONNX file;
        else the registry's artifact, downloaded to
        ``<models_root>/<stream>/<model version>`` (a folder a scorer may load).
        """
        local = Path(v.folder) if v.folder else None
        if local is not None and (local / MANIFEST_FILE).exists():
            m = ModelManifest.from_json((local / MANIFEST_FILE).read_bytes())
            if m.onnx_sha256 == v.onnx_sha256:
                return local
        from mlflow.artifacts import download_artifacts  # noqa: PLC0415

        target = (self.settings.models_root / stream / v.model_version).resolve()
        tmp = target.with_name(f".{target.name}.download")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        got = Path(download_artifacts(artifact_uri=v.source, dst_path=str(tmp)))
        shutil.rmtree(target, ignore_errors=True)
        got.rename(target)
        shutil.rmtree(tmp, ignore_errors=True)
        return target

    # Aliases and audit ---------------------------------------------------------------------

    def _record(self, stream: str, entry: AuditEntry) -> None:
        key = f"{AUDIT_PREFIX}{entry.at:%Y%m%dT%H%M%S%fZ}.{secrets.token_hex(4)}"
        self.client.set_registered_model_tag(registered_name(stream), key, entry.to_json())

    def set_alias(
        self, stream: str, alias: str, version: str, *, by: str, reason: str
    ) -> AuditEntry:
        """Point ``alias`` at ``version``: audited first (entry + version tags), then applied."""
        _check_alias(alias)
        _check_words(by, reason)
        target = self.version(stream, version)
        previous = self.by_alias(stream, alias)
        entry = AuditEntry(
            at=_now(),
            stream=stream,
            alias=alias,
            version=target.version,
            model_version=target.model_version,
            previous=None if previous is None else previous.version,
            by=by,
            reason=reason,
            gate=target.gate,
        )
        name = registered_name(stream)
        self._record(stream, entry)
        for key, value in (("set_by", by), ("set_at", entry.at.isoformat()), ("reason", reason)):
            self.client.set_model_version_tag(name, target.version, f"alias.{alias}.{key}", value)
        self.client.set_registered_model_alias(name, alias, target.version)
        return entry

    def clear_alias(self, stream: str, alias: str, *, by: str, reason: str) -> AuditEntry | None:
        """Remove ``alias`` (audited); ``None`` when it was not set."""
        _check_alias(alias)
        _check_words(by, reason)
        previous = self.by_alias(stream, alias)
        if previous is None:
            return None
        entry = AuditEntry(
            at=_now(),
            stream=stream,
            alias=alias,
            version=None,
            model_version=None,
            previous=previous.version,
            by=by,
            reason=reason,
        )
        self._record(stream, entry)
        self.client.delete_registered_model_alias(registered_name(stream), alias)
        return entry

    def aliases(self, stream: str) -> dict[str, RegisteredVersion | None]:
        """Each alias and the version it names."""
        return {a: self.by_alias(stream, a) for a in ALIASES}

    def audit(self, stream: str) -> list[AuditEntry]:
        """Every recorded alias move of the stream, oldest first."""
        from mlflow.exceptions import MlflowException  # noqa: PLC0415

        try:
            rm = self.client.get_registered_model(registered_name(stream))
        except MlflowException:
            return []
        tags: Mapping[str, str] = rm.tags or {}
        return [AuditEntry.from_json(tags[k]) for k in sorted(tags) if k.startswith(AUDIT_PREFIX)]


def promote_champion(
    registry: ModelRegistry,
    store: ModelStore,
    stream: str,
    version: str,
    *,
    by: str,
    reason: str,
) -> tuple[AuditEntry, ModelRef]:
    """The explicit approval: ``version`` becomes the champion in the registry AND serves.

    1. When the model store's challenger (shadow or canary) is this model, it is
       promoted with :meth:`ModelStore.promote_challenger` (its slot cleared and
       logged); otherwise the version's folder (:meth:`ModelRegistry.folder_of`)
       with :meth:`ModelStore.promote`. Either verifies the folder with the
       serving loader: a refusal changes nothing, in the store or the registry.
    2. Inside the store's ``before_apply`` (after the folder is verified, before
       the store writes): the registry's ``champion`` alias moves, audited. If
       that fails, the store writes nothing either.
    3. The ``challenger``, ``shadow`` and ``canary`` aliases on the same version
       are cleared (audited): it is the champion now.
    """
    target = registry.version(stream, version)
    moved: list[AuditEntry] = []

    def move_alias(_ref: ModelRef) -> None:  # 2.
        moved.append(registry.set_alias(stream, "champion", version, by=by, reason=reason))

    staged = store.challenger(stream)  # 1.
    if staged is not None and (staged.ref.version, staged.ref.onnx_sha256) == (
        target.model_version,
        target.onnx_sha256,
    ):
        ref = store.promote_challenger(stream, by=by, reason=reason, before_apply=move_alias)
    else:
        folder = registry.folder_of(target, stream)
        ref = store.promote(stream, folder, by, reason, before_apply=move_alias)
    for alias in ("challenger", "shadow", "canary"):  # 3.
        held = registry.by_alias(stream, alias)
        if held is not None and held.version == target.version:
            registry.clear_alias(stream, alias, by=by, reason=f"promoted to champion: {reason}")
    return moved[0], ref


def _check_alias(alias: str) -> None:
    if alias not in ALIASES:
        raise RegistryError(f"unknown alias {alias!r}; one of {', '.join(ALIASES)}")


def _check_words(by: str, reason: str) -> None:
    if not by.strip() or not reason.strip():
        raise RegistryError("an alias move needs who (by) and why (reason)")


__all__ = [
    "ALIASES",
    "AuditEntry",
    "GateNotPassed",
    "ModelRefused",
    "ModelRegistry",
    "RegisteredVersion",
    "RegistryError",
    "check_gate",
    "promote_champion",
    "registered_name",
]
