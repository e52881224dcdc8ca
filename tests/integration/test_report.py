"""``streamscore report`` from a small real run: the real sink's scored log, alerts on Kafka.

The scored events go through Kafka and ``ScoredSink`` into Parquet files; drift
alerts (and one record that breaks the contract) are read back from a topic
from the beginning; a realised report and a bench result come from files. The
summary table's numbers are checked against figures computed here from the
events that were produced (not from the files), with the standard library.
"""

from __future__ import annotations

import base64
import json
import os
import random
import shutil
import statistics
import uuid
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest

from streamscore.libs.config import Settings
from streamscore.libs.contracts.alerts import DriftAlert
from streamscore.libs.contracts.codec import encode
from streamscore.libs.contracts.scored import ScoredEvent
from streamscore.libs.labels.realised import Figures, Report, Status
from streamscore.libs.topics import DRIFT_ALERT_TOPIC, TopicSpec
from streamscore.services.cli import main
from streamscore.services.clients import make_admin, make_producer
from streamscore.services.report import SECTIONS, build_report, render, write_report
from streamscore.services.topics_admin import create_topics
from tests.integration.test_scored_sink import run_sink
from tests.scored_log_runs import STREAM, log_topics, produce

pytestmark = pytest.mark.integration
T0 = datetime(2026, 3, 1, 10, tzinfo=UTC)
N = 1500


def run_events(seed: int = 11) -> list[ScoredEvent]:
    """Two hours of transactions: model m1 then m2, some degraded, latencies 1-40 ms."""
    rng = random.Random(seed)
    out = []
    for i in range(N):
        t = T0 + timedelta(seconds=i * 7200 / N, microseconds=rng.randrange(10**6))
        degraded = rng.random() < 0.04
        version = "none" if degraded else ("tx-m1" if i < N // 2 else "tx-m2")
        score = None if degraded else rng.betavariate(1.2, 6 if version == "tx-m1" else 4)
        decision = (
            "approve" if score is None or score < 0.5 else "step_up" if score < 0.8 else "block"
        )
        latency = timedelta(microseconds=int(rng.lognormvariate(8, 0.6)))  # ~3 ms median
        out.append(
            ScoredEvent(
                event_id=f"rep-{i:06d}",
                event_time=t,
                stream=STREAM,
                keys={"customer_id": f"C{rng.randrange(300)}"},
                feature_names_hash="0" * 64,
                values=[rng.random(), None],
                model_version=version,
                policy_version="p-1",
                score=score,
                decision=decision,
                policy_path="degraded:no_score" if degraded else "model",
                degraded="no_score" if degraded else None,
                feature_freshness={"customer_tx": 1.0},
                decided_at=t + latency,
            )
        )
    return out


def alerts() -> list[DriftAlert]:
    base = {
        "stream": STREAM,
        "segment": "all",
        "detector": "cusum",
        "effect_sds": 0.6,
        "statistic": 3.1,
        "evidence_events": 400,
        "baseline_events": 390,
        "mean": 0.2,
        "baseline_mean": 0.1,
        "baseline_lag_s": 86400,
        "related": [],
        "model_version": "tx-m1",
        "reason": "score moved",
    }
    return [
        DriftAlert(
            alert_id=f"a{i}",
            kind=kind,  # type: ignore[arg-type]
            signal=signal,  # type: ignore[arg-type]
            feature=feature,
            first_evidence_at=T0 + timedelta(minutes=10 + 30 * i),
            confirmed_at=T0 + timedelta(minutes=25 + 30 * i),
            raised_at=T0 + timedelta(minutes=26 + 30 * i),
            **base,  # type: ignore[arg-type]
        )
        for i, (kind, signal, feature) in enumerate(
            [
                ("drift", "score", None),
                ("drift", "feature", "tx_amount"),
                ("retrain_trigger", "score", None),
                ("rollback", "score", None),
            ]
        )
    ]


def realised_file(root: Path) -> Path:
    def figures(version: str, day: str, status: Status, auc: float, completeness: float) -> Figures:
        return Figures(
            version,
            status,
            500,
            500,
            20,
            auc,
            auc - 0.3,
            0.2,
            [0.5],
            [0.4],
            completeness,
            day,
        )

    report = Report(
        STREAM,
        "2026-03-09T00:00:00+00:00",
        7.0,
        100,
        [0.5],
        days=[
            figures("tx-m1", "2026-03-01", "realised", 0.86, 1.0),
            figures("tx-m1", "2026-03-02", "estimate", 0.84, 0.7),
            figures("tx-m2", "2026-03-02", "estimate", 0.88, 0.6),
        ],
    )
    path = root / STREAM / "_report.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(report.to_dict()))
    return path


class _Parsed(HTMLParser):
    """Section ids, embedded images and the summary cells of the report."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: list[str] = []
        self.images: list[str] = []
        self.cells: dict[tuple[str, str], str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "section":
            self.sections.append(a["id"] or "")
        elif tag == "img":
            self.images.append(a["src"] or "")
        elif tag == "td" and "data-key" in a:
            self.cells[a["data-stream"] or "", a["data-key"] or ""] = a["data-value"] or ""


def _pct(values: list[float], p: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1]


def test_report_from_a_real_run(stack_settings: Settings, tmp_path: Path) -> None:
    prefix = f"it-{uuid.uuid4().hex[:8]}."
    topic = log_topics(stack_settings, prefix)
    events = run_events()
    produce(stack_settings, topic, events)
    scored = tmp_path / "scored"
    run_sink(stack_settings, prefix, topic, scored, until=lambda s: s.consumed >= N)

    alerts_topic = prefix + DRIFT_ALERT_TOPIC
    create_topics(make_admin(stack_settings), [TopicSpec(alerts_topic, 2, 1)])
    producer = make_producer(stack_settings, client_id="it-report")
    for a in alerts():
        producer.send(alerts_topic, encode(a), key=a.alert_id.encode())
    producer.send(alerts_topic, b'{"alert_id": "broken"}', key=b"broken")
    assert producer.flush(30) == 0
    bench = tmp_path / "bench.json"
    bench.write_text(
        json.dumps(
            {
                "bench": "e2e",
                "conditions": {"rate": 1000},
                "rows": [{"metric": "e2e p99", "value": 9.1, "unit": "ms", "ratio": 1.4}],
            }
        )
    )

    inputs = build_report(
        scored=scored,
        alerts_topic=alerts_topic,
        settings=stack_settings,
        realised=[realised_file(tmp_path / "examples")],
        bench=[bench],
    )
    assert len(inputs.alerts.alerts) == 4 and inputs.alerts.rejected == 1
    out = write_report(tmp_path / "report.html", render(inputs))
    doc = out.read_text()
    parsed = _Parsed()
    parsed.feed(doc)

    # Every section, in order, and its images embedded as PNG (no file or URL needed).
    assert parsed.sections == list(SECTIONS)
    assert len(parsed.images) >= 6
    for src in parsed.images:
        head, data = src.split(",", 1)
        assert head == "data:image/png;base64"
        assert base64.b64decode(data)[:8] == b"\x89PNG\r\n\x1a\n"
    assert "1 record(s) rejected" in doc and "tx_amount" in doc
    assert "retrain_trigger" in doc and "<td>rollback</td>" in doc
    assert "e2e p99" in doc

    # The summary's numbers, recomputed from the produced events.
    latencies_ms = [(e.decided_at - e.event_time) / timedelta(milliseconds=1) for e in events]
    scores = [e.score for e in events if e.score is not None]
    want = {
        "events": float(N),
        "latency_p50_ms": _pct(latencies_ms, 50),
        "latency_p95_ms": _pct(latencies_ms, 95),
        "latency_p99_ms": _pct(latencies_ms, 99),
        "latency_max_ms": max(latencies_ms),
        "degraded_share": sum(e.degraded is not None for e in events) / N,
        "mean_score": statistics.fmean(scores),
    }
    got = {k: float(parsed.cells[STREAM, k]) for k in want}
    assert got == pytest.approx(want, rel=1e-9)

    # The command itself, from files only (alerts as JSON lines).
    lines = tmp_path / "alerts.jsonl"
    lines.write_bytes(b"\n".join(encode(a) for a in alerts()))
    html_out = tmp_path / "cli.html"
    assert (
        main(
            ["report", "--scored", str(scored), "--alerts-file", str(lines), "--out", str(html_out)]
        )
        == 0
    )
    cli = _Parsed()
    cli.feed(html_out.read_text())
    if keep := os.environ.get("STREAMSCORE_KEEP_REPORT"):  # look at it: a path to copy to
        shutil.copy(out, keep)
    assert cli.sections == ["summary", "latency", "decision-mix", "scores", "drift"]
    assert cli.cells == parsed.cells
