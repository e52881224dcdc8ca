"""The FastAPI application: health, readiness, metrics and policy administration.

Every route under ``/v1/admin`` needs a bearer token with the ``admin`` scope
and writes an audit event; bodies larger than ``max_body_bytes`` are refused
with 413 before they are read; validation errors are 422 with the field, never
a 500. ``POST /v1/score/<stream>`` (:mod:`.score`) decides events synchronously
through the stream path's own feature computation and scorer.
"""

from __future__ import annotations

from typing import Any

import redis
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from streamscore.libs.config import Settings
from streamscore.services.api.admin import admin_router
from streamscore.services.api.auth import AuthError, Revocations
from streamscore.services.api.guard import Guard
from streamscore.services.api.models import models_router
from streamscore.services.api.score import SyncScoring
from streamscore.services.api.score_route import score_router
from streamscore.services.stack import StackError, wait_kafka_ready

MAX_BODY_BYTES = 256 * 1024


class BodyLimit:
    """Refuse bodies by their declared length, before anything is read (pure ASGI).

    1. A body must declare its length (411 otherwise): nothing is read blind.
    2. A declared length over the limit is refused (413) before reading anything.

    A plain ASGI middleware, not ``@app.middleware("http")``: Starlette's
    ``BaseHTTPMiddleware`` runs every request through an extra task and stream
    pair, which cost the scoring route more than its own work under load.
    """

    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            length = Headers(scope=scope).get("content-length")
            refusal = None
            if scope["method"] in ("POST", "PUT", "PATCH") and length is None:
                refusal = JSONResponse({"detail": "Content-Length required"}, status_code=411)
            elif length is not None and (not length.isdigit() or int(length) > self.max_body_bytes):
                refusal = JSONResponse({"detail": "request body too large"}, status_code=413)
            if refusal is not None:
                await refusal(scope, receive, send)
                return
        await self.app(scope, receive, send)


def create_app(
    settings: Settings,
    redis_client: redis.Redis,
    *,
    kafka_bootstrap: str | None = None,
    registry: CollectorRegistry = REGISTRY,
    max_body_bytes: int = MAX_BODY_BYTES,
    scoring: SyncScoring | None = None,
) -> FastAPI:
    """Build the app around injected clients (tests pass real ones on the local stack).

    Without ``scoring`` the app serves administration only (no scoring routes).
    """
    app = FastAPI(title="streamscore", version="0.1.0")

    app.add_middleware(BodyLimit, max_body_bytes=max_body_bytes)

    @app.exception_handler(AuthError)
    async def auth_error(_request: Request, exc: AuthError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return JSONResponse({"detail": exc.detail}, status_code=exc.status, headers=headers)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    def readyz(response: Response) -> dict[str, Any]:
        checks = {"redis": False, "kafka": False}
        try:
            checks["redis"] = bool(redis_client.ping())
        except redis.RedisError:
            checks["redis"] = False
        if kafka_bootstrap is not None:
            try:
                wait_kafka_ready(kafka_bootstrap, 2.0)
                checks["kafka"] = True
            except StackError:
                checks["kafka"] = False
        # A stream started with a model must still have one; one started without
        # a model decides on its degraded path by design (reported, not failed).
        models = scoring.models() if scoring is not None else {}
        expected = scoring.with_model if scoring is not None else frozenset()
        checks["models"] = all(models.get(s) is not None for s in expected)
        ready = all(checks.values())
        response.status_code = 200 if ready else 503
        return {"ready": ready, "checks": checks, "models": models}

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    # One guard for every router: one revocation cache, so a revoked token is refused everywhere.
    guard = Guard(settings.api_signing_key.get_secret_value(), Revocations(redis_client))
    app.include_router(admin_router(redis_client, guard))
    app.include_router(models_router(settings, redis_client, guard))
    if scoring is not None:
        app.include_router(score_router(scoring, guard))
    return app
