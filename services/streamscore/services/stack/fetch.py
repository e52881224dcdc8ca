"""``python -m streamscore.services.stack.fetch``: put the Kafka broker jars in the cache once.

Used by ``scripts/setup.sh`` so the first ``streamscore up`` downloads nothing.
"""

from __future__ import annotations

from streamscore.libs.config import Settings
from streamscore.services.stack.kafka import ensure_jars
from streamscore.services.stack.layout import StackLayout


def main() -> int:
    """Fetch (or confirm) the cached broker jars under the jar cache of the default home."""
    ensure_jars(StackLayout.for_home(Settings().home).jar_cache, print)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
