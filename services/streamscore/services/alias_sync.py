"""The MLflow registry's aliases follow what serves: the model store's moves mirrored.

A challenger progresses in the scorers (:mod:`.rollout`: shadow → canary →
champion, by its plan) and the scorers write only to the model store (Redis):
they do not open the registry. The retrainer, which registered the challenger,
mirrors those moves on the registry's aliases with :func:`sync_aliases`, each
alias move audited with the store's own who and why:

1. The store's challenger is in canary: the ``canary`` alias names its
   registry version (and the ``shadow`` alias no longer does).
2. The store's active model is a registered version the ``champion`` alias
   does not name: the alias moves to it, and the ``challenger`` / ``shadow`` /
   ``canary`` aliases on that version are cleared (it is the champion now).

A model the registry does not know (promoted from a folder by hand) is left
alone. Rollbacks are applied from the judge's ``rollback`` alert
(:meth:`~streamscore.services.retrainer.Retrainer.apply_rollbacks`).
"""

from __future__ import annotations

from streamscore.services.model_registry import AuditEntry, ModelRegistry, RegisteredVersion
from streamscore.services.model_store import ModelStore


def _registered(
    registry: ModelRegistry, stream: str, model_version: str
) -> RegisteredVersion | None:
    return next((v for v in registry.versions(stream) if v.model_version == model_version), None)


def sync_aliases(registry: ModelRegistry, store: ModelStore, stream: str) -> list[AuditEntry]:
    """Steps 1-2 of the module docstring; returns the alias moves made (audited)."""
    moves: list[AuditEntry] = []
    challenger = store.challenger(stream)
    if challenger is not None and challenger.mode == "canary":  # 1.
        target = _registered(registry, stream, challenger.ref.version)
        held = registry.by_alias(stream, "canary")
        if target is not None and (held is None or held.version != target.version):
            why = f"{challenger.ref.reason} -> canary at {challenger.share:g} (model store)"
            moves.append(
                registry.set_alias(stream, "canary", target.version, by="rollout-progression",
                                   reason=why[:500])
            )  # fmt: skip
            shadow = registry.by_alias(stream, "shadow")
            if shadow is not None and shadow.version == target.version:
                cleared = registry.clear_alias(
                    stream, "shadow", by="rollout-progression", reason="moved on to canary"
                )
                moves += [cleared] if cleared is not None else []
    active = store.active(stream)
    if active is None:
        return moves
    target = _registered(registry, stream, active.version)  # 2.
    champion = registry.by_alias(stream, "champion")
    if target is None or (champion is not None and champion.version == target.version):
        return moves
    moves.append(
        registry.set_alias(stream, "champion", target.version, by=active.promoted_by,
                           reason=active.reason[:500])
    )  # fmt: skip
    for alias in ("challenger", "shadow", "canary"):
        held = registry.by_alias(stream, alias)
        if held is not None and held.version == target.version:
            cleared = registry.clear_alias(
                stream, alias, by=active.promoted_by, reason="promoted to champion"
            )
            moves += [cleared] if cleared is not None else []
    return moves
