"""Feast definitions of streamscore, generated from ``streamscore.libs.features``.

Run ``feast apply`` in this folder (with FEAST_REDIS and STREAMSCORE_FEAST_DATA
set), or let ``streamscore.services.feast_store`` apply them programmatically.
"""

import os
from pathlib import Path

from streamscore.libs.features.feast_repo import feast_objects

_data = Path(os.environ.get("STREAMSCORE_FEAST_DATA", "data"))
globals().update({obj.name: obj for obj in feast_objects(_data / "offline")})
