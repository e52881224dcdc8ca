"""Redis round trip through the project's client factory."""

from __future__ import annotations

import uuid

import pytest
import redis

from streamscore.libs.config import Settings
from streamscore.services.clients import make_redis

pytestmark = pytest.mark.integration


def test_redis_round_trip(stack_settings: Settings) -> None:
    r = make_redis(stack_settings)
    assert r.ping() is True
    key = f"it:{uuid.uuid4().hex}"
    pipe = r.pipeline()
    pipe.hset(key, mapping={"count_1d": 3, "amount_avg_1d": "12.5"})
    pipe.expire(key, 60)
    pipe.execute()
    assert r.hgetall(key) == {b"count_1d": b"3", b"amount_avg_1d": b"12.5"}
    assert 0 < r.ttl(key) <= 60
    r.delete(key)
    assert r.exists(key) == 0


def test_hiredis_parser_in_use() -> None:
    # The hot path relies on the C parser; redis-py picks it when hiredis is installed.
    assert redis.utils.HIREDIS_AVAILABLE
