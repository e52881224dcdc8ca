"""FAULTS L5: Redis bytes per pending event in the joiner's layout, and the 10-million figure."""

from __future__ import annotations

import pytest
import redis

from streamscore.libs.config import Settings
from streamscore.services.join_memory import TEN_MILLION, probe
from tests.processor_runs import redis_db_url

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_bytes_per_pending_event(stack_settings: Settings) -> None:
    assert stack_settings.redis_url
    client = redis.Redis.from_url(redis_db_url(stack_settings.redis_url, 10))
    p = probe(client, "transactions", 100_000)
    print(
        f"\nL5 joiner state: {p.events:,} pending transactions ({p.features} features, "
        f"{p.key_bytes}-char ids): {p.bytes_per_event:.0f} B/event by MEMORY USAGE, "
        f"{p.bytes_per_event_used_memory:.0f} B/event by used_memory; "
        f"10M pending -> {p.extrapolated_10m_gib:.2f} GiB ({p.keys} keys)"
    )
    # Measured 225 B (MEMORY USAGE) / 234 B (used_memory) on Redis 7.0: a record of about
    # 115 bytes in a 128-byte allocation, the hash entry, and ~17 bytes in a due list.
    assert p.bytes_per_event < 300
    assert p.extrapolated_10m_gib == pytest.approx(p.bytes_per_event * TEN_MILLION / 2**30, 0.01)
    assert not list(client.scan_iter(match="streamscore:join:{memprobe-*"))  # cleaned up
