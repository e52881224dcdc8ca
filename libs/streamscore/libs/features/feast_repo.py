"""Feast objects built from the declarations: entities, sources and feature views.

Nothing here talks to a store: :func:`feast_objects` returns the objects that
``feast apply`` (or ``FeatureStore.apply``) registers. Every windowed feature is
a ``Float32`` (the model input dtype); a feature view's TTL is its group's
``max_age_s``; its batch source is the offline Parquet file of the group,
timestamped by ``event_time``; its push source lets processors write online.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from feast import Entity, FeatureView, Field, FileSource, PushSource, ValueType
from feast.types import Float32

from streamscore.libs.features.definitions import ENTITIES, GROUPS
from streamscore.libs.features.spec import FeatureGroup

PROJECT = "streamscore"
TIMESTAMP_FIELD = "event_time"


def entity(name: str) -> Entity:
    """The Feast entity of a declared entity."""
    (e,) = [e for e in ENTITIES if e.name == name]
    return Entity(
        name=e.name, join_keys=[e.join_key], value_type=ValueType.STRING, description=e.description
    )


def offline_path(offline_dir: Path, group: FeatureGroup) -> Path:
    """Where the offline (training) values of a group live."""
    return offline_dir / f"{group.name}.parquet"


def push_source_name(group: FeatureGroup) -> str:
    return f"{group.name}_push"


def feature_view(group: FeatureGroup, offline_dir: Path) -> tuple[FeatureView, PushSource]:
    """The feature view of one group and the push source that feeds it online."""
    batch = FileSource(
        name=f"{group.name}_offline",
        path=str(offline_path(offline_dir, group)),
        timestamp_field=TIMESTAMP_FIELD,
    )
    push = PushSource(name=push_source_name(group), batch_source=batch)
    view = FeatureView(
        name=group.name,
        entities=[entity(group.entity.name)],
        ttl=timedelta(seconds=group.max_age_s),
        schema=[
            Field(name=f.name, dtype=Float32, description=f.description) for f in group.features
        ],
        source=push,
        online=True,
        description=group.description,
        tags={"stream": group.stream},
    )
    return view, push


def feast_objects(offline_dir: Path) -> list[Any]:
    """Everything to register: entities, push sources and feature views."""
    objects: list[Any] = [entity(e.name) for e in ENTITIES]
    for g in GROUPS:
        view, push = feature_view(g, offline_dir)
        objects += [push, view]
    return objects
