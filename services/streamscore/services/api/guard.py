"""What every router of one app checks first: the bearer token's scope, and the stream name.

One :class:`Guard` per app, shared by its routers, so they share one revocation
cache: a token revoked through one route is refused by every route at once.

(No ``from __future__ import annotations`` here: FastAPI reads the dependency's
``Header()`` from its real annotation.)
"""

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Header, HTTPException

from streamscore.libs.topics import STREAMS
from streamscore.services.api.auth import Principal, Revocations, authenticate, require


class Guard:
    """Bearer-token dependencies for the routes of one app."""

    def __init__(self, key: str, revocations: Revocations) -> None:
        self.key = key
        self.revocations = revocations

    def scope(self, scope: str) -> Callable[..., Awaitable[Principal]]:
        """A dependency: the caller's principal if its token holds ``scope`` (else 401/403).

        Async, so it runs on the event loop rather than in a worker thread per request
        (revocations are read from Redis at most once a second, see :class:`Revocations`).
        """

        async def check(authorization: Annotated[str | None, Header()] = None) -> Principal:
            return require(authenticate(authorization, self.key, self.revocations), scope)

        return check


def known_stream(stream: str) -> str:
    """``stream`` if it is one of the streams, else 404."""
    if stream not in STREAMS:
        raise HTTPException(404, f"unknown stream {stream!r}")
    return stream
