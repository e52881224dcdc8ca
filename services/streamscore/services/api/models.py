"""Model administration routes: list, promote, roll back (issue #5, hot swap without stopping).

Each route needs the ``admin`` scope; each change is audited before it applies
(the store calls the audit record after the folder is verified and before it
writes). Scorers adopt the new active model between batches
(:meth:`~streamscore.services.scorer.Scorer.refresh_model`).

Promoted paths are folders on the serving hosts, confined to
``Settings.models_root``: a path is taken relative to the root (or absolute
inside it) and resolved, symlinks included; one that resolves outside the root
is refused with 403 before anything reads it.

(No ``from __future__ import annotations`` here: FastAPI must see the real
``Depends(...)`` objects of the closures, not strings it would resolve globally.)
"""

from pathlib import Path
from typing import Annotated, Any

import msgspec
import redis
from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, ConfigDict, Field

from streamscore.libs.config import Settings
from streamscore.libs.model.safety import ModelRefused
from streamscore.libs.topics import STREAMS
from streamscore.services.api.audit import AuditLog
from streamscore.services.api.auth import Principal
from streamscore.services.api.guard import Guard, known_stream
from streamscore.services.model_store import ModelRef, ModelStore, ModelStoreError


class PromoteBody(BaseModel):
    """What to promote and why (the reason goes to the reference and the audit log)."""

    model_config = ConfigDict(extra="forbid")

    path: str = Field(min_length=1, max_length=4096)
    reason: str = Field(min_length=1, max_length=1000)


def confine(root: Path, given: str) -> Path:
    """``given`` resolved inside ``root``, or :class:`PermissionError` (outside it).

    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> confine(root, "tx/v2") == root.resolve() / "tx" / "v2"
    True
    >>> confine(root, "../etc")
    Traceback (most recent call last):
    PermissionError: '../etc' is outside the models root
    """
    base = root.resolve()
    target = (base / given).resolve()  # an absolute ``given`` replaces ``base``
    if not target.is_relative_to(base):
        raise PermissionError(f"{given!r} is outside the models root")
    return target


def _ref(ref: ModelRef | None) -> dict[str, Any] | None:
    return None if ref is None else msgspec.to_builtins(ref)


def models_router(settings: Settings, redis_client: redis.Redis, guard: Guard) -> APIRouter:
    """The ``/v1/admin/models`` routes around the given Redis client."""
    router = APIRouter()
    audit = AuditLog(redis_client)
    models = ModelStore(redis_client)
    admin = guard.scope("admin")

    @router.get("/v1/admin/models")
    def list_models(p: Annotated[Principal, Depends(admin)]) -> dict[str, Any]:
        return {
            s: {
                "active": _ref(models.active(s)),
                "history": [_ref(r) for r in models.history(s)],
            }
            for s in STREAMS
        }

    @router.post("/v1/admin/models/{stream}/promote")
    def promote(
        stream: str, p: Annotated[Principal, Depends(admin)], body: PromoteBody
    ) -> dict[str, Any]:
        # 1. Unknown stream: 404; a path outside the models root: 403, nothing read.
        # 2. The store verifies the folder with the serving loader (422 with the
        #    refusal's reason and detail) and refuses version conflicts (409).
        # 3. The audit entry is written between verification and the write.
        known_stream(stream)
        try:
            folder = confine(settings.models_root, body.path)
        except PermissionError as exc:
            raise HTTPException(403, str(exc)) from exc
        except (OSError, ValueError) as exc:  # e.g. an embedded NUL, a name too long
            raise HTTPException(422, f"invalid path: {exc}") from exc

        def record(ref: ModelRef) -> None:
            audit.record(
                actor=p.subject,
                action="model.promote",
                target=stream,
                detail={
                    "version": ref.version,
                    "path": ref.path,
                    "onnx_sha256": ref.onnx_sha256,
                    "reason": ref.reason,
                },
            )

        try:
            ref = models.promote(stream, folder, p.subject, body.reason, before_apply=record)
        except ModelRefused as exc:
            raise HTTPException(422, str(exc)) from exc
        except ModelStoreError as exc:
            raise HTTPException(409, str(exc)) from exc
        return {"active": _ref(ref)}

    @router.post("/v1/admin/models/{stream}/rollback")
    def rollback(stream: str, p: Annotated[Principal, Depends(admin)]) -> dict[str, Any]:
        # 409: nothing earlier; 422: the earlier folder no longer holds its model.
        known_stream(stream)
        current = models.active(stream)

        def record(ref: ModelRef) -> None:
            audit.record(
                actor=p.subject,
                action="model.rollback",
                target=stream,
                detail={"version": ref.version, "from": current.version if current else None},
            )

        try:
            previous = models.rollback(stream, before_apply=record)
        except ModelRefused as exc:
            raise HTTPException(422, str(exc)) from exc
        except ModelStoreError as exc:
            raise HTTPException(409, str(exc)) from exc
        return {"active": _ref(previous)}

    return router
