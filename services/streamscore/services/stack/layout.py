"""Where the local stack keeps its files under the streamscore home.

>>> from pathlib import Path
>>> layout = StackLayout.for_home(Path("/h"), cache_root=Path("/c"))
>>> str(layout.state_file), str(layout.kafka_data), str(layout.jar_cache)
('/h/stack/stack.json', '/h/stack/kafka-data', '/c')
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

#: Overrides the jar cache root (default ``<home>/cache``), e.g. to share it across homes.
CACHE_ENV = "STREAMSCORE_KAFKA_CACHE"


@dataclass(frozen=True)
class StackLayout:
    """Paths of one stack. Data and logs live under ``<home>/stack`` (removed by nobody:
    ``down`` keeps them); the Kafka jars live in the cache so they survive everything."""

    home: Path
    stack_dir: Path
    state_file: Path
    lock_file: Path
    config_dir: Path
    kafka_data: Path
    redis_data: Path
    logs_dir: Path
    jar_cache: Path

    @classmethod
    def for_home(cls, home: Path, *, cache_root: Path | None = None) -> StackLayout:
        """The layout under ``home``.

        The jar cache comes from ``cache_root``, else ``$STREAMSCORE_KAFKA_CACHE``, else
        ``<home>/cache``.
        """
        home = home.expanduser()
        stack = home / "stack"
        if cache_root is None:
            env = os.environ.get(CACHE_ENV, "").strip()
            cache_root = Path(env).expanduser() if env else home / "cache"
        return cls(
            home=home,
            stack_dir=stack,
            state_file=stack / "stack.json",
            lock_file=stack / ".lock",
            config_dir=stack / "config",
            kafka_data=stack / "kafka-data",
            redis_data=stack / "redis-data",
            logs_dir=stack / "logs",
            jar_cache=cache_root,
        )

    def make_dirs(self) -> None:
        """Create every folder of the layout (not the jar cache: the Kafka module owns it)."""
        for path in (self.stack_dir, self.config_dir, self.kafka_data, self.redis_data):
            path.mkdir(parents=True, exist_ok=True)
        self.logs_dir.mkdir(parents=True, exist_ok=True)
