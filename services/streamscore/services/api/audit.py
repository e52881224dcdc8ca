"""The audit log of administration: one Redis stream entry per action (FAULTS S5).

Written before the action's response is sent; an action whose audit entry
cannot be written fails (an unaudited change is worse than a refused one).
"""

from __future__ import annotations

import json
import time
from typing import Any, cast

import redis

AUDIT_STREAM = "streamscore:audit"
MAX_ENTRIES = 1_000_000


class AuditLog:
    """Append and read audit events."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def record(self, *, actor: str, action: str, target: str, detail: dict[str, Any]) -> str:
        """Append one event; returns its stream id."""
        entry = {
            "at": f"{time.time():.6f}",
            "actor": actor,
            "action": action,
            "target": target,
            "detail": json.dumps(detail, sort_keys=True),
        }
        entry_id = self.client.xadd(
            AUDIT_STREAM, cast(Any, entry), maxlen=MAX_ENTRIES, approximate=True
        )
        return entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)

    def last(self, n: int = 100) -> list[dict[str, Any]]:
        """The ``n`` newest events, newest first."""
        rows = self.client.xrevrange(AUDIT_STREAM, count=n)
        out = []
        for entry_id, fields in rows:  # type: ignore[union-attr]
            d = {k.decode(): v.decode() for k, v in fields.items()}
            d["detail"] = json.loads(d["detail"])
            d["id"] = entry_id.decode()
            out.append(d)
        return out
