"""The daily investigator capacity ledger on Redis, shared by every scorer process.

Per stream and UTC day (of the event time) two keys, both expiring two days
after their last write:

- ``<ns>:capacity:{<stream>:<YYYYMMDD>}``: a sorted set of the day's top ``k``
  alert scores, members are event ids (so recording an event again is a no-op);
- ``<ns>:capacity:{<stream>:<YYYYMMDD>}:kept``: the event ids the ledger let
  through, so a replayed event (at-least-once) gets the decision it got the
  first time even after better alerts displaced it from the top ``k``.

The braces are a hash tag: on Redis Cluster both keys of a day are in one slot,
as the script that uses both requires.

One batch is one round trip: one script call (``EVALSHA``; loaded on first
use) per day in the batch, and a batch almost always holds one day (a
pipeline would cost a ``SCRIPT EXISTS`` round trip more). Why a script is
atomic enough:

1. Redis runs a script alone, so "add the batch, trim to ``k``, read the
   ``k``-th score, remember who passed" is one step for every scorer sharing the
   day; two scorers never see a half-applied batch.
2. The rule of who passes is the one of
   :func:`streamscore.libs.policy.capacity.over_capacity` (mirrored in Lua:
   kept when already kept, when the day holds fewer than ``k``, or when the score
   is at least the ``k``-th); the decision itself is taken in Python by that pure
   function on the script's answer, so the two agree by construction for the
   alerts that can be downgraded (tests pin it).
3. Days are independent, so the calls of one batch need not be one transaction.

Redis unavailable (or the script failing): capacity is not enforced for that
batch (fail open on workload, never on risk: nothing is downgraded), counted in
``streamscore_capacity_unavailable_total``; for ``ERROR_BACKOFF_S`` after a
failure Redis is not asked (the batches are not enforced and counted the same),
so a dead store's timeouts stay off the decision path.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence

import redis

from streamscore.libs.policy.capacity import Candidate, DayState
from streamscore.services.metrics import DecisionMetrics

log = logging.getLogger(__name__)

#: ``str.format`` pattern; the doubled braces are the literal hash tag ``{<stream>:<day>}``.
TOP_KEY = "{ns}:capacity:{{{stream}:{day}}}"
TTL_S = 2 * 24 * 3600
#: After a failure, how long capacity goes unenforced before Redis is asked again.
ERROR_BACKOFF_S = 5.0

# KEYS: top-k sorted set, kept set. ARGV: k, ttl, then event_id, score pairs.
# Returns {count, k-th score ('' while fewer than k), already-kept flags in order}.
RECORD = """
local k = tonumber(ARGV[1])
local already = {}
for i = 3, #ARGV, 2 do
  already[#already + 1] = redis.call('SISMEMBER', KEYS[2], ARGV[i])
  redis.call('ZADD', KEYS[1], ARGV[i + 1], ARGV[i])
end
redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -(k + 1))
local count = redis.call('ZCARD', KEYS[1])
local kth = ''
if count >= k then kth = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')[2] end
for i = 3, #ARGV, 2 do
  if already[(i - 1) / 2] == 1 or count < k or tonumber(ARGV[i + 1]) >= tonumber(kth) then
    redis.call('SADD', KEYS[2], ARGV[i])
  end
end
redis.call('EXPIRE', KEYS[1], ARGV[2])
redis.call('EXPIRE', KEYS[2], ARGV[2])
return {count, kth, already}
"""


class RedisCapacity:
    """A :class:`~streamscore.libs.policy.capacity.CapacityLedger` on Redis."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        namespace: str = "streamscore",
        prefix: str = "",
        metrics: DecisionMetrics | None = None,
    ) -> None:
        self.client = client
        self.ns = namespace
        #: Put before the stream's name in the keys (a topic prefix: tenants, tests).
        self.prefix = prefix
        self.metrics = metrics
        self.unavailable = 0
        self._down_until = -1.0
        self._script = client.register_script(RECORD)

    def record(
        self, stream: str, alerts: Mapping[str, Sequence[Candidate]], k: int
    ) -> Mapping[str, DayState] | None:
        """Record each day's alerts; ``None`` (counted) when Redis cannot answer."""
        days = sorted(alerts)
        if time.monotonic() < self._down_until:
            self._unavailable(stream, None)
            return None
        try:
            replies = []
            for day in days:
                argv: list[str | int] = [k, TTL_S]
                for c in alerts[day]:
                    argv += [c.event_id, repr(c.score)]
                top = TOP_KEY.format(ns=self.ns, stream=self.prefix + stream, day=day)
                replies.append(self._script(keys=[top, top + ":kept"], args=argv))
        except redis.RedisError as exc:
            self._down_until = time.monotonic() + ERROR_BACKOFF_S
            self._unavailable(stream, exc)
            return None
        out = {}
        for day, (count, kth, flags) in zip(days, replies, strict=True):
            ids = [c.event_id for c in alerts[day]]
            kept = frozenset(e for e, f in zip(ids, flags, strict=True) if int(f) == 1)
            kth_s = kth.decode() if isinstance(kth, bytes) else str(kth)
            out[day] = DayState(int(count), float(kth_s) if kth_s else None, kept)
        return out

    def _unavailable(self, stream: str, exc: Exception | None) -> None:
        self.unavailable += 1
        if self.metrics is not None:
            self.metrics.capacity_unavailable.labels(stream).inc()
        if exc is not None:
            log.warning("%s: capacity not enforced for %.0f s (%s)", stream, ERROR_BACKOFF_S, exc)
