"""Canary routing: stable per entity, the configured share, monotone in the share."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import pytest

from streamscore.libs.rollout.routing import bucket, canary_mask, in_canary

KEYS = [f"C{i:07d}" for i in range(20_000)]


@pytest.mark.parametrize("share", [0.01, 0.1, 0.3, 0.5, 0.9])
def test_share_of_entities_is_the_configured_share(share: float) -> None:
    got = sum(canary_mask(KEYS, share, salt="v2")) / len(KEYS)
    # Binomial standard deviation at n=20000 is at most 0.0036: 4 sd.
    assert abs(got - share) < 0.015


def test_an_entity_always_gets_the_same_model_across_processes() -> None:
    """The point is a fixed hash: another interpreter (another hash seed) agrees."""
    code = (
        "from streamscore.libs.rollout.routing import bucket;"
        "print(repr([bucket(f'C{i:07d}', salt='v2') for i in range(50)]))"
    )
    env_seeds = ("0", "12345")
    outs = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": s, "PATH": ""},
        ).stdout
        for s in env_seeds
    }
    assert len(outs) == 1
    assert outs.pop().strip() == repr([bucket(k, salt="v2") for k in KEYS[:50]])


def test_larger_share_keeps_the_smaller_cohort_and_salt_reshuffles() -> None:
    small, large = canary_mask(KEYS, 0.1, salt="v2"), canary_mask(KEYS, 0.3, salt="v2")
    assert all(big for s, big in zip(small, large, strict=True) if s)
    other = canary_mask(KEYS, 0.1, salt="v3")
    overlap = sum(a and b for a, b in zip(small, other, strict=True)) / max(1, sum(small))
    assert overlap < 0.2  # a new challenger draws a fresh cohort (independent: about 0.1)


def test_edges_and_the_hash_is_blake2b() -> None:
    assert not in_canary("", 1.0, salt="v2")  # no key: the champion decides
    assert not in_canary("C1", 0.0) and in_canary("C1", 1.0)
    h = hashlib.blake2b(b"C1", digest_size=8, person=b"ss-canary")
    h.update(b"\x00v2")
    assert bucket("C1", salt="v2") == int.from_bytes(h.digest(), "big") / 2**64
