"""Topic administration against the real broker: create is idempotent, list shows them."""

from __future__ import annotations

import uuid

import pytest

from streamscore.libs.config import Settings
from streamscore.libs.topics import TopicSpec, catalogue
from streamscore.services.clients import make_admin
from streamscore.services.topics_admin import create_topics, list_topics

pytestmark = pytest.mark.integration


def test_catalogue_create_twice_then_list(stack_settings: Settings) -> None:
    admin = make_admin(stack_settings)
    specs = catalogue(partitions=3, replication=1)
    first = create_topics(admin, specs)
    assert all(o.status in ("created", "exists", "exists-different") for o in first), first
    second = create_topics(admin, specs)
    assert {o.status for o in second} <= {"exists", "exists-different"}
    listed = list_topics(admin)
    assert {s.name for s in specs} <= set(listed)


def test_partition_mismatch_is_reported_not_changed(stack_settings: Settings) -> None:
    admin = make_admin(stack_settings)
    name = f"it-{uuid.uuid4().hex[:8]}"
    assert create_topics(admin, [TopicSpec(name, 2, 1)])[0].status == "created"
    outcome = create_topics(admin, [TopicSpec(name, 4, 1)])[0]
    assert (outcome.status, outcome.partitions) == ("exists-different", 2)
    assert list_topics(admin)[name] == 2
