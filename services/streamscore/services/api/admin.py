"""Administration routes: policies (list, activate, roll back, thresholds, shadow), token
revocation, the audit log. Each needs the ``admin`` scope; each change is audited before it applies.

(No ``from __future__ import annotations`` here: FastAPI must see the real
``Depends(...)`` objects of the closures, not strings it would resolve globally.)
"""

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import msgspec
import redis
from fastapi import APIRouter, Body, Depends, HTTPException

from streamscore.libs.policy.spec import PolicyError, load_policy, validate
from streamscore.libs.topics import STREAMS
from streamscore.services.api.audit import AuditLog
from streamscore.services.api.auth import Principal
from streamscore.services.api.guard import Guard, known_stream
from streamscore.services.policy_store import PolicyStore


def admin_router(redis_client: redis.Redis, guard: Guard) -> APIRouter:
    """The ``/v1/admin`` routes around the given Redis client."""
    router = APIRouter()
    revocations = guard.revocations
    audit = AuditLog(redis_client)
    policies = PolicyStore(redis_client)
    admin = guard.scope("admin")

    @router.get("/v1/admin/policies")
    def list_policies(p: Annotated[Principal, Depends(admin)]) -> dict[str, Any]:
        return {
            s: {
                "active": (a.version if (a := policies.active(s)) else None),
                "history": [h.version for h in policies.history(s)],
                "shadow": (sh.version if (sh := policies.shadow(s)) else None),
            }
            for s in STREAMS
        }

    @router.put("/v1/admin/policies/{stream}", status_code=201)
    def put_policy(
        stream: str,
        p: Annotated[Principal, Depends(admin)],
        body: Annotated[dict[str, Any], Body()],
    ) -> dict[str, Any]:
        known_stream(stream)
        try:
            policy = load_policy(msgspec.json.encode(body))
            if policy.stream != stream:
                raise PolicyError(f"policy is for {policy.stream!r}, not {stream!r}")
            audit.record(
                actor=p.subject,
                action="policy.activate",
                target=stream,
                detail={"version": policy.version},
            )
            policies.activate(policy)
        except PolicyError as exc:
            raise HTTPException(422, str(exc)) from exc
        return {"active": policy.version}

    _shadow_routes(router, admin, known_stream, policies, audit)

    @router.post("/v1/admin/policies/{stream}/rollback")
    def rollback(stream: str, p: Annotated[Principal, Depends(admin)]) -> dict[str, Any]:
        known_stream(stream)
        try:
            previous = policies.rollback(stream)
        except PolicyError as exc:
            raise HTTPException(409, str(exc)) from exc
        audit.record(
            actor=p.subject,
            action="policy.rollback",
            target=stream,
            detail={"version": previous.version},
        )
        return {"active": previous.version}

    @router.patch("/v1/admin/policies/{stream}/thresholds")
    def set_thresholds(
        stream: str,
        p: Annotated[Principal, Depends(admin)],
        body: Annotated[dict[str, Any], Body()],
    ) -> dict[str, Any]:
        known_stream(stream)
        active = policies.active(stream)
        if active is None:
            raise HTTPException(409, f"{stream}: no active policy to change")
        thresholds, version = body.get("thresholds"), body.get("version")
        if not isinstance(version, str) or not isinstance(thresholds, list):
            raise HTTPException(422, "body needs 'version' (string) and 'thresholds' (list)")
        try:
            changed = validate(
                msgspec.structs.replace(
                    active, version=version, thresholds=[float(t) for t in thresholds]
                )
            )
            audit.record(
                actor=p.subject,
                action="policy.thresholds",
                target=stream,
                detail={"version": version, "thresholds": changed.thresholds},
            )
            policies.activate(changed)
        except (PolicyError, TypeError, ValueError) as exc:
            raise HTTPException(422, str(exc)) from exc
        return {"active": version, "thresholds": changed.thresholds}

    @router.post("/v1/admin/tokens/{token_id}/revoke")
    def revoke(token_id: str, p: Annotated[Principal, Depends(admin)]) -> dict[str, str]:
        audit.record(actor=p.subject, action="token.revoke", target=token_id, detail={})
        revocations.revoke(token_id)
        return {"revoked": token_id}

    @router.get("/v1/admin/audit")
    def read_audit(p: Annotated[Principal, Depends(admin)], n: int = 100) -> list[dict[str, Any]]:
        return audit.last(max(1, min(n, 1000)))

    return router


def _shadow_routes(
    router: APIRouter,
    admin: Callable[..., Awaitable[Principal]],
    stream_name: Callable[[str], str],
    policies: PolicyStore,
    audit: AuditLog,
) -> None:
    """``PUT``/``DELETE /v1/admin/policies/{stream}/shadow``: the stream's shadow policy.

    Scorers run the shadow beside the active policy and count agreement only
    (``streamscore_shadow_decisions_total``); promoting it is activating it.
    """

    @router.put("/v1/admin/policies/{stream}/shadow", status_code=201)
    def put_shadow(
        stream: str,
        p: Annotated[Principal, Depends(admin)],
        body: Annotated[dict[str, Any], Body()],
    ) -> dict[str, Any]:
        """Run a policy in shadow beside the active one (promote: PUT its document as active)."""
        known_stream(stream)
        try:
            policy = load_policy(msgspec.json.encode(body))
            if policy.stream != stream:
                raise PolicyError(f"policy is for {policy.stream!r}, not {stream!r}")
        except PolicyError as exc:
            raise HTTPException(422, str(exc)) from exc
        audit.record(
            actor=p.subject,
            action="policy.shadow",
            target=stream,
            detail={"version": policy.version},
        )
        policies.set_shadow(policy)
        return {"shadow": policy.version}

    @router.delete("/v1/admin/policies/{stream}/shadow")
    def delete_shadow(stream: str, p: Annotated[Principal, Depends(admin)]) -> dict[str, Any]:
        known_stream(stream)
        current = policies.shadow(stream)
        audit.record(
            actor=p.subject,
            action="policy.shadow_clear",
            target=stream,
            detail={"version": current.version if current else None},
        )
        policies.clear_shadow(stream)
        return {"shadow": None}
