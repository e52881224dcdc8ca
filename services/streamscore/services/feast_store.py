"""Feast wired to the running stack: Redis online store, local registry and offline files."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from feast import FeatureStore, RepoConfig

from streamscore.libs.config import Settings
from streamscore.libs.features.feast_repo import PROJECT, feast_objects
from streamscore.services.clients import endpoints


def redis_connection_string(redis_url: str) -> str:
    """Feast's Redis connection string (``host:port[,db=N][,password=...]``) from a Redis URL.

    >>> redis_connection_string("redis://127.0.0.1:6380/2")
    '127.0.0.1:6380,db=2'
    """
    parts = urlsplit(redis_url)
    out = f"{parts.hostname}:{parts.port or 6379}"
    db = parts.path.lstrip("/")
    if db and db != "0":
        out += f",db={db}"
    if parts.password:
        out += f",password={parts.password}"
    if parts.scheme == "rediss":
        out += ",ssl=true"
    return out


def feast_data_dir(settings: Settings) -> Path:
    """Registry and offline files of Feast: ``<home>/feast``."""
    return settings.home / "feast"


def feature_store(settings: Settings, *, data_dir: Path | None = None) -> FeatureStore:
    """A FeatureStore on the stack's Redis, with the project's registry and offline files."""
    data = data_dir or feast_data_dir(settings)
    data.mkdir(parents=True, exist_ok=True)
    config = RepoConfig(
        project=PROJECT,
        provider="local",
        registry=str(data / "registry.db"),
        online_store={
            "type": "redis",
            "connection_string": redis_connection_string(endpoints(settings).redis_url),
        },
        offline_store={"type": "file"},
        entity_key_serialization_version=3,
        repo_path=data,
    )
    return FeatureStore(config=config)


def apply_definitions(store: FeatureStore, *, offline_dir: Path) -> int:
    """Register every entity, source and feature view; returns how many objects."""
    objects = feast_objects(offline_dir)
    store.apply(objects)
    return len(objects)
