"""Models in Redis: the active model reference per stream and its history, for promotion and
rollback without stopping a scorer.

A reference (:class:`ModelRef`) names a model folder on the serving hosts, the
version and ONNX file hash its manifest declares, and who promoted it when and
why. The store holds references, never model bytes; every folder is verified
with the serving loader (:func:`~streamscore.services.model_loader.open_model`)
before a reference to it is stored or re-activated, so the store never points
at a model a scorer would refuse at that moment.

Keys (``ns`` is the namespace, ``streamscore`` by default):

- ``{ns}:model:{<stream>}:active`` — the active reference (JSON);
- ``{ns}:model:{<stream>}:history`` — a list of references, newest first (at most
  ``MAX_HISTORY``); a rollback moves ``active`` down this list, a promotion pushes.
- ``{ns}:model:{<stream>}:challenger`` — the challenger (:class:`Challenger`, JSON):
  a reference beside the active one (the *champion*) with its rollout mode,
  ``shadow`` (it scores every event, its decisions go to the shadow topic only)
  or ``canary`` (it decides a stable ``share`` of entities,
  :mod:`streamscore.libs.rollout.routing`);
- ``{ns}:model:{<stream>}:challenger_log`` — what happened to challengers, newest
  first (set, cleared, promoted: who, when, why).

Scorers poll :meth:`ModelStore.active` between batches
(:meth:`~streamscore.services.scorer.Scorer.refresh_model`) and load the folder
themselves, checking it still holds the version and hash of the reference
(:func:`load_reference`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import msgspec
import redis

from streamscore.libs.model.reasons import TreeReasons
from streamscore.libs.model.session import ScoringSession
from streamscore.libs.rollout.progression import Plan
from streamscore.libs.topics import STREAMS
from streamscore.services.model_loader import ModelRefused, open_model

# The stream is a hash tag: a stream's keys share one Redis Cluster slot, so promotions
# and challenger moves (several keys, one transaction) work on a cluster too.
HISTORY_KEY = "{ns}:model:{{{stream}}}:history"
ACTIVE_KEY = "{ns}:model:{{{stream}}}:active"
CHALLENGER_KEY = "{ns}:model:{{{stream}}}:challenger"
CHALLENGER_LOG_KEY = "{ns}:model:{{{stream}}}:challenger_log"
MAX_HISTORY = 100

RolloutMode = Literal["shadow", "canary"]
ROLLOUT_MODES: tuple[RolloutMode, ...] = ("shadow", "canary")


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


class Challenger(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The challenger of a stream: its reference (who set it, when, why) and how it rolls out.

    ``share`` is the canary's share of entities (0..1); in ``shadow`` mode it is kept
    but unused (no entity is decided by a shadow).
    """

    ref: ModelRef
    mode: RolloutMode
    share: float
    #: How it moves on by itself (:mod:`streamscore.libs.rollout.progression`); ``None``:
    #: it stays where it is until an operator moves it.
    plan: Plan | None = None
    #: Its canary passed and it awaits an operator's approval (plan ``promote: approval``).
    ready: bool = False


class ChallengerEvent(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """One line of the challenger log: ``set``, ``advanced`` (shadow → canary by its plan),
    ``ready`` (canary passed, awaiting approval), ``cleared`` or ``promoted``."""

    action: Literal["set", "advanced", "ready", "cleared", "promoted"]
    challenger: Challenger
    at: datetime
    by: str
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


def _decode_challenger(raw: bytes) -> Challenger:
    try:
        return msgspec.json.decode(raw, type=Challenger)
    except msgspec.DecodeError as exc:
        raise ModelStoreError(f"unreadable challenger: {exc}") from exc


#: A change of the challenger: the new entry (``None``: removed) and its log event.
_Move = tuple[Challenger | None, ChallengerEvent]


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

    # -- the challenger -------------------------------------------------------------------

    def _challenger_keys(self, stream: str) -> tuple[str, str]:
        self._keys(stream)  # unknown stream: ModelStoreError
        return (
            CHALLENGER_KEY.format(ns=self.ns, stream=stream),
            CHALLENGER_LOG_KEY.format(ns=self.ns, stream=stream),
        )

    def challenger(self, stream: str) -> Challenger | None:
        """The challenger of ``stream`` (``None``: none)."""
        raw = self.client.get(self._challenger_keys(stream)[0])
        return None if raw is None else _decode_challenger(raw)  # type: ignore[arg-type]

    def challenger_log(self, stream: str) -> list[ChallengerEvent]:
        """What happened to the challengers of ``stream``, newest first."""
        rows = self.client.lrange(self._challenger_keys(stream)[1], 0, MAX_HISTORY - 1)
        return [msgspec.json.decode(r, type=ChallengerEvent) for r in rows]  # type: ignore[union-attr]

    def _log(self, pipe: redis.client.Pipeline, stream: str, event: ChallengerEvent) -> None:
        log_key = self._challenger_keys(stream)[1]
        pipe.lpush(log_key, msgspec.json.encode(event))
        pipe.ltrim(log_key, 0, MAX_HISTORY - 1)

    def set_challenger(
        self,
        stream: str,
        folder: str | Path,
        *,
        mode: RolloutMode,
        share: float,
        by: str,
        reason: str,
        plan: Plan | None = None,
    ) -> ModelRef:
        """Make the model folder at ``folder`` the challenger of ``stream``; returns its reference.

        ``plan``: how it progresses by itself (``None``: an operator moves it).

        1. ``mode`` is ``shadow`` or ``canary``; ``share`` is in [0, 1]
           (:class:`ModelStoreError` otherwise).
        2. The folder is loaded with the serving loader, as for :meth:`promote`: a
           refusal raises :class:`ModelRefused` and nothing changes.
        3. A version names one model: the active version cannot be its own challenger,
           and a version in the history with another ONNX hash is refused.
        4. Challenger and log line written in one transaction (replacing any challenger;
           setting the same model again changes its mode or share).
        """
        if mode not in ROLLOUT_MODES:  # 1.
            raise ModelStoreError(f"rollout mode must be one of {ROLLOUT_MODES}, not {mode!r}")
        if not 0.0 <= share <= 1.0:
            raise ModelStoreError(f"canary share must be in [0, 1], not {share}")
        key, _ = self._challenger_keys(stream)
        path = Path(folder).resolve()
        manifest, _session, _reasons = open_model(path, stream)  # 2.
        ref = ModelRef(
            version=manifest.model_version,
            path=str(path),
            onnx_sha256=manifest.onnx_sha256,
            promoted_at=datetime.now(tz=UTC),
            promoted_by=by,
            reason=reason,
        )
        self._check_new_version(stream, ref)  # 3.
        current = self.active(stream)
        if current is not None and current.version == ref.version:
            raise ModelStoreError(f"{stream}: {ref.version} is the active model already")
        entry = Challenger(ref=ref, mode=mode, share=float(share), plan=plan)
        pipe = self.client.pipeline(transaction=True)  # 4.
        pipe.set(key, msgspec.json.encode(entry))
        self._log(
            pipe,
            stream,
            ChallengerEvent(
                action="set", challenger=entry, at=ref.promoted_at, by=by, reason=reason
            ),
        )
        pipe.execute()
        return ref

    def _check_new_version(self, stream: str, ref: ModelRef) -> None:
        for old in self.history(stream):
            if old.version == ref.version and old.onnx_sha256 != ref.onnx_sha256:
                raise ModelStoreError(
                    f"{stream}: version {ref.version} already names another model "
                    f"({old.onnx_sha256[:12]}, not {ref.onnx_sha256[:12]})"
                )

    def clear_challenger(
        self, stream: str, *, by: str, reason: str, version: str | None = None
    ) -> Challenger | None:
        """Remove the challenger of ``stream``; returns it (``None``: there was none).

        With ``version``, only a challenger of that version is removed (compare and
        delete under WATCH): a judge rolling back a canary never removes a newer
        challenger set meanwhile, and of several scorers judging the same canary
        exactly one sees it removed (the one that alerts and counts the rollback).
        """

        def remove(current: Challenger | None) -> _Move | None:
            if current is None or (version is not None and current.ref.version != version):
                return None
            return None, ChallengerEvent(
                action="cleared", challenger=current, at=datetime.now(tz=UTC), by=by, reason=reason
            )

        changed = self._change_challenger(stream, remove)
        return None if changed is None else changed[0]

    def update_challenger(
        self,
        stream: str,
        *,
        version: str,
        expect_mode: RolloutMode,
        action: Literal["advanced", "ready"],
        by: str,
        reason: str,
        mode: RolloutMode | None = None,
        share: float | None = None,
        ready: bool | None = None,
    ) -> Challenger | None:
        """Move the challenger along its plan; returns the new entry (``None``: not applied).

        Compare and set under WATCH, like :meth:`clear_challenger`: applied only while
        the challenger is still ``version`` in ``expect_mode`` (and, for ``ready``, not
        ready yet), so of several scorers deciding the same move exactly one applies
        and logs it. The reference is unchanged (no reload in the scorers; a new mode
        or share restarts their windows).
        """

        def advance(current: Challenger | None) -> _Move | None:
            if (
                current is None
                or current.ref.version != version
                or current.mode != expect_mode
                or (action == "ready" and current.ready)
            ):
                return None
            entry = msgspec.structs.replace(
                current,
                mode=mode if mode is not None else current.mode,
                share=float(share) if share is not None else current.share,
                ready=ready if ready is not None else current.ready,
            )
            event = ChallengerEvent(
                action=action, challenger=entry, at=datetime.now(tz=UTC), by=by, reason=reason
            )
            return entry, event

        changed = self._change_challenger(stream, advance)
        return None if changed is None else changed[1]

    def _change_challenger(
        self, stream: str, change: Callable[[Challenger | None], _Move | None]
    ) -> tuple[Challenger, Challenger | None] | None:
        """Compare and set the challenger under WATCH; ``(old, new)``, or ``None`` if unchanged.

        ``change`` sees the current entry and returns the new one (``None``: delete it)
        with its log event, or ``None`` to leave it. If another writer changes the entry
        between the read and the write, the transaction fails and it is read again.
        """
        key, _ = self._challenger_keys(stream)
        with self.client.pipeline(transaction=True) as pipe:
            while True:
                try:
                    pipe.watch(key)  # type: ignore[no-untyped-call]
                    raw = pipe.get(key)
                    current = None if raw is None else _decode_challenger(raw)  # type: ignore[arg-type]
                    move = change(current)
                    if current is None or move is None:
                        pipe.unwatch()
                        return None
                    entry, event = move
                    pipe.multi()
                    if entry is None:
                        pipe.delete(key)
                    else:
                        pipe.set(key, msgspec.json.encode(entry))
                    self._log(pipe, stream, event)
                    pipe.execute()
                    return current, entry
                except redis.WatchError:
                    continue  # changed between the read and the write: read again

    def promote_challenger(
        self,
        stream: str,
        *,
        by: str,
        reason: str,
        before_apply: Callable[[ModelRef], object] | None = None,
    ) -> ModelRef:
        """The challenger becomes the active model (pushed to the history); returns its reference.

        1. No challenger: :class:`ModelStoreError`.
        2. Its folder must still hold its model (:func:`load_reference`;
           :class:`ModelRefused` otherwise, nothing changes).
        3. :meth:`promote` with who and why of this promotion (its checks apply).
        4. The challenger is removed if it is still the one promoted (a challenger
           set meanwhile stays).
        """
        current = self.challenger(stream)
        if current is None:  # 1.
            raise ModelStoreError(f"{stream}: no challenger to promote")
        load_reference(current.ref, stream)  # 2.
        ref = self.promote(stream, current.ref.path, by, reason, before_apply=before_apply)  # 3.
        if (ref.version, ref.onnx_sha256) != (current.ref.version, current.ref.onnx_sha256):
            raise ModelStoreError(f"{stream}: the challenger's folder changed during promotion")
        if self.clear_challenger(
            stream, by=by, reason=f"promoted: {reason}", version=ref.version
        ):  # 4.
            key = self._challenger_keys(stream)[1]
            event = ChallengerEvent(
                action="promoted", challenger=current, at=ref.promoted_at, by=by, reason=reason
            )
            self.client.lpush(key, msgspec.json.encode(event))
        return ref
