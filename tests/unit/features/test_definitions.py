"""The feature declarations: handbook definitions, known inputs, a stable model input order."""

from __future__ import annotations

import msgspec
import pytest

from streamscore.libs.contracts.registry import contract_for
from streamscore.libs.features.definitions import (
    DERIVED_INPUTS,
    EVENT_FEATURES,
    GROUPS,
    LABEL_DELAY_S,
    feature_schema_hash,
    groups,
    model_features,
)
from streamscore.libs.features.spec import DAY
from streamscore.libs.topics import STREAMS


def test_handbook_baseline_features_exact() -> None:
    by_name = {f.name: f for g in groups("transactions") for f in g.features}
    for d in (1, 7, 30):
        count = by_name[f"customer_nb_tx_{d}d"]
        mean = by_name[f"customer_avg_amount_{d}d"]
        assert (count.agg, count.window_s, count.delay_s) == ("count", d * DAY, 0)
        assert (mean.agg, mean.field, mean.window_s, mean.delay_s) == ("mean", "amount", d * DAY, 0)
        risk = by_name[f"terminal_risk_{d}d"]
        nb = by_name[f"terminal_nb_tx_{d}d"]
        assert (risk.agg, risk.window_s, risk.delay_s, risk.empty) == (
            "label_rate",
            d * DAY,
            LABEL_DELAY_S,
            "zero",
        )
        assert (nb.window_s, nb.delay_s, nb.empty) == (d * DAY, LABEL_DELAY_S, "zero")
    assert LABEL_DELAY_S == 7 * DAY
    assert [f.name for f in EVENT_FEATURES["transactions"]][1:] == [
        "tx_during_weekend",
        "tx_during_night",
    ]


@pytest.mark.parametrize("stream", list(STREAMS))
def test_every_input_is_an_event_field_or_derived(stream: str) -> None:
    event_type = contract_for(STREAMS[stream].input_topic).type
    info = msgspec.inspect.type_info(event_type)
    assert isinstance(info, msgspec.inspect.StructType)
    fields = {f.name for f in info.fields}
    for g in groups(stream):
        assert g.entity.join_key in fields, (g.name, g.entity.join_key)
        for f in g.features:
            if f.field is not None:
                assert f.field in fields or f.field in DERIVED_INPUTS[stream], (g.name, f.name)


def test_names_unique_and_hash_stable() -> None:
    names = [f.name for g in GROUPS for f in g.features]
    assert len(names) == len(set(names))
    for stream in STREAMS:
        assert len(model_features(stream)) == len(set(model_features(stream)))
        assert feature_schema_hash(stream) == feature_schema_hash(stream)
    assert len({feature_schema_hash(s) for s in STREAMS}) == len(STREAMS)
