"""The routes of synchronous scoring: ``POST /v1/score/<stream>``, one per stream.

One concrete route per stream (not a path parameter) so that the OpenAPI
document states each stream's request and response schemas — the contracts in
``schemas/`` — and a client or a fuzzer knows exactly what to send. Each needs
a bearer token with the ``score`` scope.

(No ``from __future__ import annotations`` here: FastAPI must see the real
``Depends(...)`` objects of the closures, not strings it would resolve globally.)
"""

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse

from streamscore.libs.contracts.registry import contract_for, load_schema
from streamscore.libs.topics import STREAMS
from streamscore.services.api.auth import Principal
from streamscore.services.api.guard import Guard
from streamscore.services.api.score import MAX_BATCH, ScoreRequestError, SyncScoring

_ERROR = {
    "type": "object",
    "properties": {"detail": {"type": "string"}, "errors": {"type": "array"}},
    "required": ["detail"],
}


def _schema(topic: str) -> dict[str, Any]:
    """A contract's JSON Schema, embeddable in the OpenAPI document (no ``$schema``/``$id``)."""
    doc = load_schema(contract_for(topic))
    return {k: v for k, v in doc.items() if k not in ("$schema", "$id")}


def _openapi(stream: str) -> dict[str, Any]:
    spec = STREAMS[stream]
    event, decision = _schema(spec.input_topic), _schema(spec.decision_topic)
    batch = {"type": "array", "items": event, "minItems": 1, "maxItems": MAX_BATCH}
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"oneOf": [event, batch]}}},
        },
        "responses": {
            "200": {
                "description": "The decision (one event) or the decisions (a batch), in order.",
                "content": {
                    "application/json": {
                        "schema": {
                            "oneOf": [
                                decision,
                                {
                                    "type": "object",
                                    "properties": {
                                        "decisions": {"type": "array", "items": decision}
                                    },
                                    "required": ["decisions"],
                                },
                            ]
                        }
                    }
                },
            },
            "401": {"description": "No, expired, malformed or revoked token."},
            "403": {"description": "The token lacks the `score` scope."},
            "411": {"description": "No Content-Length."},
            "413": {"description": "Body larger than the limit."},
            "422": {
                "description": "An event refused: index, reason and field of each.",
                "content": {"application/json": {"schema": _ERROR}},
            },
            "503": {
                "description": "Decisions not acknowledged by Kafka in time (retry is safe).",
                "content": {"application/json": {"schema": _ERROR}},
            },
        },
    }


def score_router(scoring: SyncScoring, guard: Guard) -> APIRouter:
    """``POST /v1/score/<stream>`` for every stream ``scoring`` serves."""
    router = APIRouter()
    scorer = guard.scope("score")

    def route(stream: str) -> Callable[..., Awaitable[Response]]:
        async def score(request: Request, p: Annotated[Principal, Depends(scorer)]) -> Response:
            try:
                content = await scoring.score(stream, await request.body())
            except ScoreRequestError as exc:
                return JSONResponse(exc.body, status_code=exc.status)
            return Response(content, media_type="application/json")

        score.__name__ = f"score_{stream}"
        return score

    for stream in scoring.streams:
        router.add_api_route(
            f"/v1/score/{stream}",
            route(stream),
            methods=["POST"],
            summary=f"Decide {stream} events synchronously",
            openapi_extra=_openapi(stream),
            response_class=Response,
        )
    return router
