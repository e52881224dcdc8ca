"""Canary routing: a stable share of entities decided by the challenger.

An entity's key (the stream's partition key: ``customer_id``, ``account_id``
...) is hashed with BLAKE2b, salted with the challenger's version, to a point
in [0, 1); the entity belongs to the canary when that point is below the
share. The hash is fixed (never Python's per-process ``hash()``), so every
scorer process and every restart puts a customer in the same cohort while the
share and the challenger are unchanged; raising the share only adds entities
(the canary at 0.1 is inside the canary at 0.3). Salting with the version gives
each new challenger a fresh cohort, so no customer is always the guinea pig.

>>> bucket("C000042", salt="tx-2") == bucket("C000042", salt="tx-2")
True
>>> 0.0 <= bucket("C000042", salt="tx-2") < 1.0
True
>>> in_canary("C000042", 0.0, salt="tx-2"), in_canary("C000042", 1.0, salt="tx-2")
(False, True)
>>> keys = [f"C{i:06d}" for i in range(10_000)]
>>> routed = canary_mask(keys, 0.3, salt="tx-2")
>>> round(sum(routed) / len(keys), 2)
0.3
>>> wider = canary_mask(keys, 0.5, salt="tx-2")
>>> all(w for r, w in zip(routed, wider) if r)  # a larger share keeps the smaller one's entities
True
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

#: Hash output bytes used for the point (64 bits: far finer than any share anyone sets).
_DIGEST_BYTES = 8
_SCALE = float(1 << (8 * _DIGEST_BYTES))


def bucket(key: str, *, salt: str = "") -> float:
    """The entity's fixed point in [0, 1) for this salt (BLAKE2b of ``salt`` and ``key``)."""
    h = hashlib.blake2b(key.encode(), digest_size=_DIGEST_BYTES, person=b"ss-canary")
    h.update(b"\x00")  # the key cannot run into the salt: "a"+"bc" differs from "ab"+"c"
    h.update(salt.encode())
    return int.from_bytes(h.digest(), "big") / _SCALE


def in_canary(key: str, share: float, *, salt: str = "") -> bool:
    """Whether the entity ``key`` is decided by the challenger at ``share`` (0..1).

    An empty key (an event without its entity key) stays with the champion.
    """
    if not key or share <= 0.0:
        return False
    return share >= 1.0 or bucket(key, salt=salt) < share


def canary_mask(keys: Sequence[str], share: float, *, salt: str = "") -> list[bool]:
    """:func:`in_canary` for every key of a batch, in order."""
    return [in_canary(k, share, salt=salt) for k in keys]
