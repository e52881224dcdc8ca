"""Bearer tokens with scopes: HS256 JWTs signed with the settings' API signing key.

Verification (FAULTS S3):

1. Only ``HS256`` is accepted (``alg=none`` and an RS/HS confusion are refused by
   PyJWT when the algorithm list is explicit).
2. ``exp``, ``sub`` and ``jti`` are required; an expired token is refused.
3. A revoked ``jti`` (kept in Redis by :class:`Revocations`) is refused.
4. The route's scope must be among the token's scopes (``score`` for scoring,
   ``admin`` for administration; an admin token does not imply ``score``).
"""

from __future__ import annotations

import math
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import jwt
import redis

ALGORITHM = "HS256"
SCOPES = ("score", "admin")
REVOKED_KEY = "streamscore:api:revoked"


class AuthError(Exception):
    """Why a request is refused: ``status`` 401 (who are you?) or 403 (not allowed)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


@dataclass(frozen=True)
class Principal:
    """Who called, with which scopes, and with which token id."""

    subject: str
    scopes: frozenset[str]
    token_id: str


def issue_token(key: str, subject: str, scopes: Sequence[str], *, ttl_s: int = 3600) -> str:
    """A signed token (for operators and tests; production tokens come from the same key)."""
    unknown = set(scopes) - set(SCOPES)
    if unknown:
        raise ValueError(f"unknown scopes {sorted(unknown)}")
    now = int(time.time())
    claims = {
        "sub": subject,
        "scopes": list(scopes),
        "iat": now,
        "exp": now + ttl_s,
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, key, algorithm=ALGORITHM)


class Revocations:
    """Revoked token ids, in a Redis set shared by every API process.

    Each process reads the whole set at most every ``refresh_s`` seconds (one
    round trip per interval, not per request), so a revocation made by another
    process applies within ``refresh_s`` plus a round trip; one made here
    applies at once. The first read is made by the first request; later ones in
    a background thread while requests use the set read before, so a slow Redis
    never holds a request (FAULTS.md F7). When Redis cannot be read the last set
    read stays in force (counted in ``refresh_errors``): a Redis outage must not
    turn every request into a 500 while scoring goes on in degraded mode.
    """

    def __init__(self, client: redis.Redis, *, refresh_s: float = 1.0) -> None:
        self.client = client
        self.refresh_s = refresh_s
        self._revoked: set[str] = set()
        self._read_at = -math.inf
        self._reading = threading.Lock()
        self.refresh_errors = 0

    def revoke(self, token_id: str) -> None:
        self.client.sadd(REVOKED_KEY, token_id)
        self._revoked.add(token_id)

    def is_revoked(self, token_id: str) -> bool:
        now = time.monotonic()
        if now - self._read_at >= self.refresh_s and self._reading.acquire(blocking=False):
            first = self._read_at == -math.inf
            self._read_at = now
            if first:
                self._read()
            else:
                threading.Thread(target=self._read, name="revocations", daemon=True).start()
        return token_id in self._revoked

    def _read(self) -> None:
        """Replace the set with Redis's (the caller holds ``_reading``; released here)."""
        try:
            members = self.client.smembers(REVOKED_KEY)
            self._revoked = {m.decode() if isinstance(m, bytes) else m for m in members}  # type: ignore[union-attr]
        except redis.RedisError:
            self.refresh_errors += 1
        finally:
            self._reading.release()


def authenticate(authorization: str | None, key: str, revocations: Revocations) -> Principal:
    """The principal of an ``Authorization: Bearer ...`` header, or :class:`AuthError` (401)."""
    if not authorization or not authorization.startswith("Bearer "):
        raise AuthError(401, "missing bearer token")
    token = authorization.removeprefix("Bearer ").strip()
    try:
        claims = jwt.decode(
            token, key, algorithms=[ALGORITHM], options={"require": ["exp", "sub", "jti"]}
        )
    except jwt.ExpiredSignatureError as exc:
        raise AuthError(401, "token expired") from exc
    except jwt.InvalidTokenError as exc:
        raise AuthError(401, f"invalid token: {type(exc).__name__}") from exc
    scopes = claims.get("scopes")
    if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
        raise AuthError(401, "invalid token: scopes")
    if revocations.is_revoked(str(claims["jti"])):
        raise AuthError(401, "token revoked")
    return Principal(str(claims["sub"]), frozenset(scopes), str(claims["jti"]))


def require(principal: Principal, scope: str) -> Principal:
    """``principal`` if it holds ``scope``, else :class:`AuthError` (403)."""
    if scope not in principal.scopes:
        raise AuthError(403, f"scope {scope!r} required")
    return principal
