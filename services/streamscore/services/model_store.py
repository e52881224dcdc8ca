"""Models in Redis: the active model reference per stream and its history, for promotion and
rollback without stopping a scorer.

A reference (:class:`ModelRef`) names a model folder on the serving hosts, the
version and ONNX file hash its manifest declares, and who promoted it when and
why. The store holds references, never model bytes; every folder is verified
with the serving loader (:func:`~streamscore.services.model_loader.open_model`)
before a reference to it is stored or re-activated, so the store never points
at a model a scorer would refuse at that moment.

Keys (``ns`` is the namespace, ``streamscore`` by default):

- ``{ns}:model:{stream}:active`` — the active reference (JSON);
- ``{ns}:model:{stream}:history`` — a list of references, newest first (at most
  ``MAX_HISTORY``); a rollback moves ``active`` down this list, a promotion pushes.

Scorers poll :meth:`ModelStore.active` between batches
(:meth:`~streamscore.services.scorer.Scorer.refresh_model`) and load the folder
themselves, checking it still holds the version and hash of the reference
(:func:`load_reference`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import redis

from streamscore.libs.model.reasons import TreeReasons
from streamscore.libs.model.session import ScoringSession
from streamscore.libs.topics import STREAMS
from streamscore.services.model_loader import ModelRefused, open_model

HISTORY_KEY = "{ns}:model:{stream}:history"
ACTIVE_KEY = "{ns}:model:{stream}:active"
MAX_HISTORY = 100


class ModelStoreError(Exception):
    """A promotion or rollback that cannot apply (unknown stream, version conflict,
    nothing earlier to roll back to, an unreadable stored reference)."""


class ModelRef(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A promoted model: where its folder is and which model it must be."""

    version: str
    path: str
    onnx_sha256: str
    promoted_at: datetime
    promoted_by: str
    reason: str


def load_reference(ref: ModelRef, stream: str) -> tuple[ScoringSession, TreeReasons]:
    """Load the folder of ``ref`` for ``stream``, or :class:`ModelRefused`.

    1. The folder is verified and loaded like any model (:func:`open_model`).
    2. It must still hold the model that was promoted: the manifest's version and
       ONNX hash equal the reference's (``reference_mismatch`` otherwise: a folder
       replaced after promotion is refused, never served under the old name).
    """
    manifest, session, reasons = open_model(ref.path, stream)  # 1.
    if (manifest.model_version, manifest.onnx_sha256) != (ref.version, ref.onnx_sha256):  # 2.
        detail = (
            f"{ref.path} holds {manifest.model_version} ({manifest.onnx_sha256[:12]}), "
            f"the reference says {ref.version} ({ref.onnx_sha256[:12]})"
        )
        raise ModelRefused("reference_mismatch", detail)
    return session, reasons


def _decode(raw: bytes) -> ModelRef:
    try:
        return msgspec.json.decode(raw, type=ModelRef)
    except msgspec.DecodeError as exc:
        raise ModelStoreError(f"unreadable model reference: {exc}") from exc


class ModelStore:
    """Active model references and their history, per stream."""

    def __init__(self, client: redis.Redis, *, namespace: str = "streamscore") -> None:
        self.client = client
        self.ns = namespace

    def _keys(self, stream: str) -> tuple[str, str]:
        if stream not in STREAMS:
            raise ModelStoreError(f"unknown stream {stream!r}")
        return (
            ACTIVE_KEY.format(ns=self.ns, stream=stream),
            HISTORY_KEY.format(ns=self.ns, stream=stream),
        )

    def active(self, stream: str) -> ModelRef | None:
        """The active reference of ``stream`` (``None``: no model promoted yet)."""
        raw = self.client.get(self._keys(stream)[0])
        return None if raw is None else _decode(raw)  # type: ignore[arg-type]

    def history(self, stream: str) -> list[ModelRef]:
        """Every reference promoted for ``stream``, newest first."""
        rows = self.client.lrange(self._keys(stream)[1], 0, MAX_HISTORY - 1)
        return [_decode(r) for r in rows]  # type: ignore[union-attr]

    def promote(
        self,
        stream: str,
        path: str | Path,
        actor: str,
        reason: str,
        *,
        before_apply: Callable[[ModelRef], object] | None = None,
    ) -> ModelRef:
        """Make the model folder at ``path`` the active one of ``stream``; returns its reference.

        1. The folder is loaded with the serving loader: a refusal raises
           :class:`ModelRefused` (reason and detail) and nothing changes.
        2. A version names one model: a version already in the history with another
           ONNX hash is refused, as is promoting the active version again
           (:class:`ModelStoreError`). The same model re-promoted after a rollback is
           a new history entry.
        3. ``before_apply`` (the API's audit record) runs with the reference before
           anything is written; if it raises, nothing is written.
        4. History push and active set in one transaction.
        """
        active_key, history_key = self._keys(stream)
        folder = Path(path).resolve()
        manifest, _session, _reasons = open_model(folder, stream)  # 1.
        ref = ModelRef(
            version=manifest.model_version,
            path=str(folder),
            onnx_sha256=manifest.onnx_sha256,
            promoted_at=datetime.now(tz=UTC),
            promoted_by=actor,
            reason=reason,
        )
        current = self.active(stream)  # 2.
        if current is not None and current.version == ref.version:
            raise ModelStoreError(f"{stream}: {ref.version} is already the active model")
        for old in self.history(stream):
            if old.version == ref.version and old.onnx_sha256 != ref.onnx_sha256:
                raise ModelStoreError(
                    f"{stream}: version {ref.version} already names another model "
                    f"({old.onnx_sha256[:12]}, not {ref.onnx_sha256[:12]})"
                )
        if before_apply is not None:  # 3.
            before_apply(ref)
        raw = msgspec.json.encode(ref)
        pipe = self.client.pipeline(transaction=True)  # 4.
        pipe.lpush(history_key, raw)
        pipe.ltrim(history_key, 0, MAX_HISTORY - 1)
        pipe.set(active_key, raw)
        pipe.execute()
        return ref

    def rollback(
        self, stream: str, *, before_apply: Callable[[ModelRef], object] | None = None
    ) -> ModelRef:
        """Re-activate the previous version: the nearest reference below the active one in
        the history with another version (a re-promotion of the active model is skipped).

        1. Nothing earlier (or nothing active): :class:`ModelStoreError`.
        2. The earlier folder is loaded and checked against its reference
           (:func:`load_reference`): a folder changed or removed since is refused
           (:class:`ModelRefused`) and the active model stays.
        3. ``before_apply`` runs before the write (as for :meth:`promote`).
        """
        active_key, _ = self._keys(stream)
        current = self.active(stream)
        versions = self.history(stream)
        idx = next((i for i, r in enumerate(versions) if r == current), len(versions))
        active_version = current.version if current is not None else None
        previous = next((r for r in versions[idx + 1 :] if r.version != active_version), None)
        if previous is None:  # 1.
            raise ModelStoreError(f"{stream}: no earlier model to roll back to")
        load_reference(previous, stream)  # 2.
        if before_apply is not None:  # 3.
            before_apply(previous)
        self.client.set(active_key, msgspec.json.encode(previous))
        return previous
