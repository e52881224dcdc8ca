from __future__ import annotations

from streamscore.libs.topics import STREAMS, catalogue, dlq_topic


def test_catalogue_names_unique_and_complete() -> None:
    specs = catalogue(partitions=6, replication=3)
    names = [s.name for s in specs]
    assert len(names) == len(set(names))
    for s in STREAMS.values():
        for t in (s.input_topic, s.feature_topic, s.decision_topic, s.label_topic):
            assert t in names
        assert dlq_topic(s.input_topic) in names
        assert dlq_topic(s.label_topic) in names


def test_stream_topics_co_partitioned_and_replicated() -> None:
    specs = {s.name: s for s in catalogue(partitions=6, replication=3)}
    for s in STREAMS.values():
        parts = {specs[t].partitions for t in (s.input_topic, s.feature_topic, s.decision_topic)}
        assert parts == {6}
    assert all(s.replication == 3 for s in specs.values())
    assert all(s.config["min.insync.replicas"] == "2" for s in specs.values())


def test_dlq_kept_longer_than_inputs() -> None:
    specs = {s.name: s for s in catalogue(partitions=1, replication=1)}
    for s in STREAMS.values():
        dlq = int(specs[dlq_topic(s.input_topic)].config["retention.ms"])
        assert dlq > int(specs[s.input_topic].config["retention.ms"])
