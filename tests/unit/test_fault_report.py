"""The fault suite's report (tests/fault_report.py) on small inputs with known answers."""

from __future__ import annotations

from tests.fault_report import (
    Latency,
    Out,
    Sent,
    counts,
    decision,
    fault_report,
    feature_id,
    first_output_s,
    input_id,
    latencies,
    outs_from,
    phase_of,
    recovery_s,
    sent_from,
    stamp_ms,
    summary,
)


def test_counts_lost_dup_conflicting_and_extra() -> None:
    outputs = [
        Out("a", "approve"),
        Out("a", "approve"),  # a duplicate that agrees
        Out("b", "approve"),
        Out("b", "block"),  # a duplicate that disagrees
        Out("b", "block"),
        Out("z", "approve"),  # not an input
    ]
    c = counts(["a", "b", "c"], outputs)
    assert (c.lost, c.dup, c.conflicting, c.extra) == (1, 3, 1, 1)


def test_slots_are_distinct_outputs_not_duplicates() -> None:
    outputs = [
        Out("a", ("positive", True), slot=0),
        Out("a", ("correction", False), slot=1),
        Out("a", ("correction", False), slot=1),
        Out("b", ("negative", False), slot=0),
        Out("b", ("positive", True), slot=0),
    ]
    c = counts(["a", "b"], outputs)
    assert (c.lost, c.dup, c.conflicting) == (0, 2, 1)


def test_latency_from_the_earliest_input_to_the_first_output() -> None:
    inputs = [Sent("a", 1000.0), Sent("a", 5000.0), Sent("b", 2000.0), Sent("c", None)]
    outputs = [Out("a", 1, 1300.0), Out("a", 1, 1100.0), Out("b", 1, None), Out("c", 1, 9.0)]
    assert latencies(inputs, outputs) == {"a": (1000.0, 1100.0)}


def test_phases_by_input_time() -> None:
    faults = [(10.0, 12.0), (20.0, 20.0)]
    assert [phase_of(t, faults) for t in (9_900, 10_000, 12_000, 15_000, 20_000, 25_000)] == [
        "before",
        "during",
        "during",
        "after",
        "during",
        "after",
    ]
    assert phase_of(99.0, []) == "before"


def test_a_record_stamped_in_the_faults_first_millisecond_is_during_it() -> None:
    # Kafka timestamps are whole ms: a record sent 0.4 ms after the fault started
    # carries the ms the fault started in.
    assert stamp_ms(10.0004) == 10_000
    assert phase_of(10_000, [(10.0004, 12.0)]) == "during"
    assert phase_of(9_999, [(10.0004, 12.0)]) == "before"


def test_summary_is_nearest_rank() -> None:
    assert summary([]) is None
    assert summary([4.0, 1.0, 3.0, 2.0]) == Latency(4, 2.0, 4.0, 4.0)
    hundred = [float(i) for i in range(1, 101)]
    assert summary(hundred) == Latency(100, 50.0, 99.0, 100.0)


def test_recovery_until_no_input_is_overdue() -> None:
    # Fault 10-12 s. Outputs (input s -> output s): a backlog from before the
    # fault decided late at 13.5 s, events of the fault decided late until 14 s,
    # then on time; one overdue from 27 s (late at 30 s) after a fault from 25 s.
    timed = {
        "old": (9_000.0, 13_500.0),
        "d1": (11_000.0, 13_000.0),
        "d2": (11_500.0, 14_000.0),
        "ok": (13_000.0, 13_200.0),
        "next": (26_000.0, 30_000.0),
    }
    assert recovery_s(timed, [(10.0, 12.0)]) == 18.0  # one fault: 30 s is its period too
    assert recovery_s(timed, [(10.0, 12.0), (25.0, 28.0)]) == 2.0  # worst of 2.0 and 2.0
    assert recovery_s(timed, [(10.0, 12.0), (25.0, 29.5)]) == 2.0  # 30 - 29.5 = 0.5
    assert recovery_s(timed, [(10.0, 12.0)], threshold_ms=5000.0) == 0.0
    assert recovery_s(timed, [(40.0, 41.0)]) is None  # nothing published from 40 s on
    assert recovery_s(timed, []) is None


def test_recovery_of_a_kill_nothing_restarts() -> None:
    # A member killed at 10 s: its events wait for the survivor's takeover (16 s).
    timed = {"a": (9_900.0, 10_000.0), "b": (10_500.0, 16_000.0), "c": (11_000.0, 16_500.0)}
    assert recovery_s(timed, [(10.0, 10.0)]) == 6.5


def test_recovery_is_charged_until_outputs_catch_up_across_later_faults() -> None:
    # Kills every 3 s; no output between them: the first fault's events come out at 30 s.
    timed = {"a": (11_500.0, 30_000.0), "b": (14_500.0, 30_000.0)}
    faults = [(10.0, 11.0), (13.0, 14.0), (16.0, 17.0)]  # nothing published after 16 s
    assert recovery_s(timed, faults) == 19.0  # 30 - 11 (the second: 30 - 14)


def test_first_output_after_each_fault_worst_reported() -> None:
    outputs = [Out("a", 1, 1000.0), Out("b", 1, 5500.0), Out("c", 1, 9000.0), Out("d", 1, None)]
    assert first_output_s(outputs, [(2.0, 5.0)]) == 0.5
    assert first_output_s(outputs, [(2.0, 5.0), (6.0, 7.0)]) == 2.0
    assert first_output_s(outputs, [(9.5, 10.0)]) is None


class _Msg:
    def __init__(self, value: bytes, ts: tuple[int, int]) -> None:
        self._value, self._ts = value, ts

    def timestamp(self) -> tuple[int, int]:
        return self._ts

    def value(self) -> bytes | None:
        return self._value


def test_records_from_kafka_messages() -> None:
    msgs = [_Msg(b"a:approve", (1, 1500)), _Msg(b"b:block", (0, -1))]
    assert sent_from(msgs, lambda v: v.decode().split(":")[0]) == [
        Sent("a", 1500.0),
        Sent("b", None),
    ]

    assert sent_from(msgs, lambda v: v.decode().split(":")[0], ids=["a", "c"]) == [
        Sent("a", 1500.0),
        Sent("c", None),
    ]
    assert [input_id(b'{"event_id": "e1", "amount": 3}'), input_id(b"\xff{")] == ["e1", None]
    assert feature_id(b'{"event": {"event_id": "e2"}, "values": {}}') == "e2"
    assert decision(
        b'{"event_id": "e1", "decision": "block", "score": 0.9, "model_version": "m1",'
        b' "policy_path": "model", "reasons": []}'
    ) == ("e1", ("block", 0.9, "m1", "model"))

    def decode(v: bytes) -> tuple[str, str]:
        event_id, outcome = v.decode().split(":")
        return event_id, outcome

    assert outs_from(msgs, decode) == [
        Out("a", "approve", 1500.0),
        Out("b", "block", None),
    ]


def test_report_line() -> None:
    inputs = [Sent("a", 1000.0), Sent("b", 11_000.0), Sent("c", 20_000.0), Sent("d", 21_000.0)]
    outputs = [
        Out("a", "approve", 1040.0),
        Out("b", "approve", 14_000.0),
        Out("b", "approve", 14_100.0),
        Out("c", "approve", 20_080.0),
    ]
    r = fault_report("broker kill", inputs, outputs, [(10.0, 12.0)])
    assert (r.events, r.lost, r.dup, r.conflicting, r.extra) == (4, 1, 1, 0, 0)
    assert r.latency["before"] == Latency(1, 40.0, 40.0, 40.0)
    assert r.latency["during"] == Latency(1, 3000.0, 3000.0, 3000.0)
    assert r.latency["after"] == Latency(1, 80.0, 80.0, 80.0)
    assert r.recovery_s == 2.0 and r.first_output_s == 2.0
    assert (
        str(r)
        == r.line()
        == (
            "FAULT broker kill: 4 events, lost 1, dup 1, conflicting 0; latency p50/p99/max "
            "(n) before 40/40/40 ms (1), during 3,000/3,000/3,000 ms (1), after 80/80/80 ms "
            "(1); recovery 2.0 s (fault end until no input waits over 1,000 ms for its "
            "decision); first decision 2.0 s after the fault's end"
        )
    )


def test_report_line_without_timestamps_and_several_faults() -> None:
    r = fault_report(
        "monitor",
        [Sent("x"), Sent("y")],
        [Out("x", 1), Out("z", 1)],
        [(1.0, 2.0), (3.0, 4.0)],
        unit="incidents",
        output_name="alert",
        note="first drift confirmed +0.0 h",
    )
    assert r.line() == (
        "FAULT monitor: 2 incidents, lost 1, dup 0, conflicting 0, extra 1; latency n/a; "
        "recovery n/a; first alert after the fault n/a; first drift confirmed +0.0 h"
    )
    # Two faults: 5 s is 3 s after the first's end (2 s), 1 s after the second's (4 s).
    timed = fault_report("k", [Sent("a", 0.0)], [Out("a", 1, 5000.0)], [(1.0, 2.0), (3.0, 4.0)])
    assert timed.line().endswith("first decision 3.0 s after the fault's end (worst of 2 faults)")
