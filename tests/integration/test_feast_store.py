"""The declarations applied to Feast with the real Redis online store, written and read back."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from streamscore.libs.config import Settings
from streamscore.libs.features.definitions import GROUPS, groups
from streamscore.services.feast_store import apply_definitions, feature_store

pytestmark = pytest.mark.integration


def test_apply_write_and_read_online(stack_settings: Settings, tmp_path: Path) -> None:
    store = feature_store(stack_settings, data_dir=tmp_path)
    applied = apply_definitions(store, offline_dir=tmp_path / "offline")
    assert applied >= len(GROUPS)
    assert {v.name for v in store.list_feature_views()} == {g.name for g in GROUPS}

    customer = groups("transactions")[0]
    now = datetime.now(tz=UTC)
    row = {"customer_id": "C-it-1", "event_time": now}
    row.update({f: float(i) for i, f in enumerate(customer.feature_names)})
    store.write_to_online_store(customer.name, df=pd.DataFrame([row]))

    refs = [f"{customer.name}:{f}" for f in customer.feature_names]
    got = store.get_online_features(
        features=refs, entity_rows=[{"customer_id": "C-it-1"}, {"customer_id": "C-unknown"}]
    ).to_dict()
    for i, f in enumerate(customer.feature_names):
        assert got[f][0] == pytest.approx(float(i))
        # An unknown entity reads as missing, never as 0.
        assert got[f][1] is None
