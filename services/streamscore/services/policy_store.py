"""Policies in Redis: the active version per stream and its history, for change and rollback.

Scorers read the active policy from here (so a change needs no redeploy); the
history is a Redis list of policy documents, newest first. Every document is
validated by :func:`~streamscore.libs.policy.spec.load_policy` before it is stored.

Each stream also has a *shadow* slot: a policy that scorers run beside the
active one on the same scores, counting agreement only (its decisions are never
published). Promoting a shadow is activating it like any policy.
"""

from __future__ import annotations

import msgspec
import redis

from streamscore.libs.policy.spec import Policy, PolicyError, load_policy, validate

# The stream is a hash tag: a stream's keys share one Redis Cluster slot, so the
# activation (history push + active set) stays one transaction there too.
HISTORY_KEY = "{ns}:policy:{{{stream}}}:history"
ACTIVE_KEY = "{ns}:policy:{{{stream}}}:active"
SHADOW_KEY = "{ns}:policy:{{{stream}}}:shadow"
MAX_HISTORY = 100


class PolicyStore:
    """Active policies and their history, per stream."""

    def __init__(self, client: redis.Redis, *, namespace: str = "streamscore") -> None:
        self.client = client
        self.ns = namespace

    def active(self, stream: str) -> Policy | None:
        raw = self.client.get(ACTIVE_KEY.format(ns=self.ns, stream=stream))
        return None if raw is None else load_policy(raw)  # type: ignore[arg-type]

    def history(self, stream: str) -> list[Policy]:
        rows = self.client.lrange(HISTORY_KEY.format(ns=self.ns, stream=stream), 0, MAX_HISTORY)
        return [load_policy(r) for r in rows]  # type: ignore[union-attr]

    def activate(self, policy: Policy) -> None:
        """Make ``policy`` the active one of its stream (its version must be new)."""
        if any(p.version == policy.version for p in self.history(policy.stream)):
            raise PolicyError(f"version {policy.version!r} already exists for {policy.stream}")
        raw = msgspec.json.encode(policy)
        pipe = self.client.pipeline(transaction=True)
        pipe.lpush(HISTORY_KEY.format(ns=self.ns, stream=policy.stream), raw)
        pipe.ltrim(HISTORY_KEY.format(ns=self.ns, stream=policy.stream), 0, MAX_HISTORY - 1)
        pipe.set(ACTIVE_KEY.format(ns=self.ns, stream=policy.stream), raw)
        pipe.execute()

    def rollback(self, stream: str) -> Policy:
        """Re-activate the version before the active one."""
        active = self.active(stream)
        versions = self.history(stream)
        idx = next((i for i, p in enumerate(versions) if active and p.version == active.version), 0)
        if idx + 1 >= len(versions):
            raise PolicyError(f"{stream}: no earlier policy to roll back to")
        previous = versions[idx + 1]
        self.client.set(ACTIVE_KEY.format(ns=self.ns, stream=stream), msgspec.json.encode(previous))
        return previous

    def shadow(self, stream: str) -> Policy | None:
        """The shadow policy of ``stream`` (``None``: no shadow)."""
        raw = self.client.get(SHADOW_KEY.format(ns=self.ns, stream=stream))
        return None if raw is None else load_policy(raw)  # type: ignore[arg-type]

    def set_shadow(self, policy: Policy) -> None:
        """Run ``policy`` in shadow on its stream (replacing any shadow; validated first)."""
        raw = msgspec.json.encode(validate(policy))
        self.client.set(SHADOW_KEY.format(ns=self.ns, stream=policy.stream), raw)

    def clear_shadow(self, stream: str) -> bool:
        """Stop the shadow of ``stream``; whether there was one."""
        return bool(self.client.delete(SHADOW_KEY.format(ns=self.ns, stream=stream)))
