"""The joiner's Redis state behaves exactly like the in-memory reference, on real Redis."""

from __future__ import annotations

import random
import uuid

import pytest
import redis

from streamscore.libs.config import Settings
from streamscore.libs.labels.layout import JoinKeys
from streamscore.libs.labels.machine import JoinMachine
from streamscore.libs.labels.outbox import Blob, OutRecord
from streamscore.libs.labels.records import Emitted, context_of, record_of
from streamscore.libs.labels.stores import DictStore
from streamscore.services.join_state import FencedError, RedisJoinState
from tests.label_join_cases import DEFAULT_SPEC, Input, ScoredIn, batches, scenario
from tests.processor_runs import redis_db_url
from tests.unit.labels.test_machine import rows, run

pytestmark = pytest.mark.integration


@pytest.fixture
def client(stack_settings: Settings) -> redis.Redis:
    assert stack_settings.redis_url
    return redis.Redis.from_url(redis_db_url(stack_settings.redis_url, 5))


def run_redis(
    state: RedisJoinState, machine: JoinMachine, batched: list[list[Input]]
) -> list[Emitted]:
    out: list[Emitted] = []
    for batch in batched:
        ids = {
            x.event.event_id if isinstance(x, ScoredIn) else x.fact.target_event_id for x in batch
        }
        ids.discard(None)
        view = state.view(ids, ids)  # type: ignore[arg-type]
        for x in batch:
            if isinstance(x, ScoredIn):
                rec = record_of(x.event, state.intern(context_of(x.event)))
                out += machine.scored(view, x.event.event_id, rec)[1]
            else:
                out += machine.label(view, x.fact)[1]
        state.load_due(view, machine.targets(view.meta))
        out += machine.advance(view)[1]
        state.commit(view, None)
    return out


@pytest.mark.parametrize("seed", range(6))
def test_redis_state_equals_the_reference(client: redis.Redis, seed: int) -> None:
    rng = random.Random(seed)
    sc = scenario(rng, 120)
    batched = batches(rng, sc.inputs, max_size=25)
    state = RedisJoinState(
        client, JoinKeys(uuid.uuid4().hex[:8] + "-", "transactions", 16), ttl_s=600
    )
    state.claim()
    try:
        got = rows(run_redis(state, JoinMachine(DEFAULT_SPEC), batched))
        ref_store = DictStore()
        want = rows(run(JoinMachine(DEFAULT_SPEC), ref_store, batched))
        assert got == want
        # A restarted joiner reads back the same clock, cursors and gauges.
        again = RedisJoinState(client, state.keys, ttl_s=600)
        again.claim()
        assert again.meta == ref_store.meta
        assert again.contexts == state.contexts and len(state.contexts) > 1
    finally:
        state.delete_all()


def test_outbox_and_fencing(client: redis.Redis) -> None:
    keys = JoinKeys(uuid.uuid4().hex[:8] + "-", "transactions", 4)
    first = RedisJoinState(client, keys, ttl_s=600)
    first.claim()
    try:
        view = first.view([], [])
        blob = Blob(1, {("scored", 0): 5}, [OutRecord("examples", b"k", b"v")])
        first.commit(view, blob)
        assert first.outbox() == [blob] and first.next_seq == 2
        second = RedisJoinState(client, keys, ttl_s=600)
        second.claim()  # a new joiner: the first is fenced from now on
        assert second.next_seq == 2 and second.last_tag == {("scored", 0): 5}
        with pytest.raises(FencedError):
            first.commit(first.view([], []), None)
        with pytest.raises(FencedError):
            first.drop_outbox([blob])
        second.drop_outbox([blob])
        assert second.outbox() == []
    finally:
        first.delete_all()
