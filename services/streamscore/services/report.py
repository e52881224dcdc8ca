"""``streamscore report``: one self-contained HTML file with plots from a run.

For people who would rather look than read. Inputs (all read, nothing written
but the HTML file):

* the scored-event log that ``streamscore scored-sink`` writes (``--scored``,
  one folder per stream, read with
  :func:`~streamscore.libs.scored_log.read.read_scored`: each event once);
* drift alerts: the ``alerts.drift`` topic read from the beginning to its end
  (``--alerts-topic``), or files of alerts as JSON lines (``--alerts-file``);
  every record is decoded against the ``alerts/drift_alert`` contract and the
  ones that do not decode are counted in the report, not dropped silently;
* the joiner's realised reports (``--realised``: ``_report.json`` files, or a
  folder searched for them);
* benchmark results (``--bench``: the JSON of ``streamscore bench NAME --json``).

Steps:

1. Read the inputs above.
2. Aggregate with :mod:`streamscore.libs.reporting.aggregate` (pure): the
   per-stream summary, latency quantiles and decision mixes per time bin,
   score histograms per model version, the drift timeline, realised series.
3. Draw each plot with matplotlib (Agg backend, no display) into a PNG held in
   memory and embed it as base64, so the file opens anywhere, offline
   (:mod:`streamscore.services.report_plots`).
4. Write the HTML (temp file, then rename).

Latency here is ``decided_at - event_time`` of each scored event: the
producer's clock to the decision. It is a latency only when the producer
stamps events with the wall clock (``bench e2e`` does); on a simulated clock
(the demo's accelerated scenario time) it is not, and the report says so.
"""

from __future__ import annotations

import html
import json
import math
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from streamscore.libs.config import Settings
from streamscore.libs.contracts.alerts import DriftAlert
from streamscore.libs.contracts.codec import decode
from streamscore.libs.contracts.errors import ContractError
from streamscore.libs.reporting.aggregate import (
    AlertPoint,
    StreamSummary,
    drift_timeline,
    realised_series,
    summarise,
)
from streamscore.libs.scored_log.layout import stream_dir
from streamscore.libs.scored_log.read import read_scored
from streamscore.libs.topics import STREAMS
from streamscore.services.clients import make_consumer
from streamscore.services.durable_files import publish
from streamscore.services.report_plots import (
    StreamData,
    plot_drift,
    plot_latency,
    plot_mix,
    plot_realised,
    plot_scores,
)

#: Sections of the report, in order (their ids are the HTML anchors).
SECTIONS = {
    "summary": "Summary",
    "latency": "Latency",
    "decision-mix": "Decision mix over time",
    "scores": "Score distribution per model version",
    "drift": "Drift timeline",
    "realised": "Realised performance as labels mature",
    "bench": "Benchmarks",
}
#: A median ``decided_at - event_time`` above this is not a latency (a simulated clock).
SIMULATED_CLOCK_S = 60.0
_MAX_ALERTS_BYTES = 1 << 20


# -- 1. inputs ------------------------------------------------------------------------------


def _epoch_us(col: pa.ChunkedArray) -> np.ndarray:
    us = col.cast(pa.timestamp("us", tz="UTC")).cast(pa.int64())
    return np.asarray(us.to_numpy(zero_copy_only=False), dtype=np.int64)


def load_stream(root: Path, stream: str) -> StreamData | None:
    """One stream's log (each event once), ``None`` when it has no rows."""
    table = read_scored(root, stream)
    if table.num_rows == 0:
        return None
    scores = table.column("score").cast(pa.float64()).fill_null(math.nan)
    event_us = _epoch_us(table.column("event_time"))
    return StreamData(
        stream=stream,
        event_time_s=event_us / 1e6,
        latency_s=(_epoch_us(table.column("decided_at")) - event_us) / 1e6,
        decisions=table.column("decision").to_pylist(),
        degraded=pc.is_valid(table.column("degraded")).to_pylist(),
        scores=np.asarray(scores.to_numpy(zero_copy_only=False), dtype=np.float64),
        model_versions=table.column("model_version").to_pylist(),
    )


def streams_in(root: Path) -> list[str]:
    """The catalogue's streams that have a folder under ``root``."""
    return [s for s in sorted(STREAMS) if stream_dir(root, s).is_dir()]


@dataclass
class Alerts:
    """Decoded drift alerts and how many records were rejected (with the first reasons)."""

    alerts: list[DriftAlert] = field(default_factory=list)
    rejected: int = 0
    reasons: list[str] = field(default_factory=list)

    def take(self, raw: bytes, origin: str) -> None:
        try:
            self.alerts.append(decode(DriftAlert, raw, max_bytes=_MAX_ALERTS_BYTES))
        except ContractError as err:
            self.rejected += 1
            if len(self.reasons) < 5:
                self.reasons.append(f"{origin}: {err.reason}")


def read_alerts_file(path: Path, into: Alerts) -> None:
    """Alerts from a file of JSON lines (one ``DriftAlert`` per line)."""
    for n, line in enumerate(path.read_bytes().splitlines(), start=1):
        if line.strip():
            into.take(line, f"{path.name}:{n}")


def read_alerts_topic(
    settings: Settings, topic: str, into: Alerts, *, timeout_s: float = 30.0
) -> None:
    """Every record of ``topic`` from the beginning to the end offsets seen at the start.

    1. Ask for the partitions and their high watermarks (the end of what to read).
    2. Assign every non-empty partition at its beginning, with a group id of
       its own that never commits: reading does not move any service's offsets.
    3. Consume until every partition reached its end, or ``timeout_s``.
    """
    consumer: Consumer = make_consumer(
        settings, group_id=f"streamscore-report-{uuid.uuid4().hex[:8]}", client_id="report"
    )
    try:
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        if meta.error is not None:
            raise RuntimeError(f"{topic}: {meta.error}")
        ends: dict[int, int] = {}
        for p in meta.partitions:  # 1.
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            if high > low:
                ends[p] = high
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])  # 2.
        deadline = time.monotonic() + timeout_s
        done: set[int] = set()
        while len(done) < len(ends) and time.monotonic() < deadline:  # 3.
            for m in consumer.consume(num_messages=500, timeout=0.5):
                if m.error() is not None:
                    continue
                p, off = m.partition() or 0, m.offset() or 0
                if off < ends.get(p, 0):
                    into.take(m.value() or b"", f"{topic}[{p}]@{off}")
                if off + 1 >= ends.get(p, 0):
                    done.add(p)
        missing = sorted(set(ends) - done)
        if missing:
            raise TimeoutError(
                f"{topic}: partitions {missing} not read to the end in {timeout_s} s"
            )
    finally:
        consumer.close()


def read_realised(paths: Iterable[Path]) -> list[dict[str, Any]]:
    """Realised reports: ``_report.json`` files, or folders searched for them."""
    files: list[Path] = []
    for p in paths:
        files += sorted(p.rglob("_report.json")) if p.is_dir() else [p]
    return [json.loads(f.read_text()) for f in files]


def read_bench(paths: Iterable[Path]) -> list[dict[str, Any]]:
    """Benchmark results (``streamscore bench NAME --json``), one JSON object per file."""
    return [json.loads(p.read_text()) for p in paths]


# -- 4. HTML --------------------------------------------------------------------------------

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1000px; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.note { color: #555; font-size: 0.9em; }
img { max-width: 100%; }
"""


def _fmt(v: float | None, unit: str = "") -> str:
    if v is None:
        return "–"
    return f"{v:,.3f}{unit}" if abs(v) < 1e6 else f"{v:,.0f}{unit}"


def _cell(stream: str, key: str, value: float | None, text: str) -> str:
    """A summary cell whose exact value is in ``data-value`` (tests read it back)."""
    raw = "" if value is None else repr(float(value))
    return (
        f'<td data-stream="{html.escape(stream)}" data-key="{key}" data-value="{raw}">'
        f"{html.escape(text)}</td>"
    )


def summary_table(rows: Sequence[StreamSummary]) -> str:
    """The summary: events, latency percentiles (ms), degraded share, decisions, versions."""
    head = (
        "<tr><th>stream</th><th>events</th><th>latency p50 ms</th><th>p95 ms</th>"
        "<th>p99 ms</th><th>max ms</th><th>degraded</th><th>mean score</th>"
        "<th>decisions</th><th>model versions</th></tr>"
    )
    body = []
    for r in rows:
        lat = r.latency_s
        ms = {k: None if v is None else v * 1000 for k, v in
              (("p50", lat.p50), ("p95", lat.p95), ("p99", lat.p99), ("max", lat.max))}  # fmt: skip
        mix = ", ".join(f"{k} {n / r.events:.1%}" for k, n in r.decisions.items())
        versions = ", ".join(f"{k} ({n:,})" for k, n in r.model_versions.items())
        body.append(
            "<tr>"
            f"<td>{html.escape(r.stream)}</td>"
            + _cell(r.stream, "events", r.events, f"{r.events:,}")
            + "".join(_cell(r.stream, f"latency_{k}_ms", v, _fmt(v)) for k, v in ms.items())
            + _cell(r.stream, "degraded_share", r.degraded_share, f"{r.degraded_share or 0:.2%}")
            + _cell(r.stream, "mean_score", r.mean_score, _fmt(r.mean_score))
            + f"<td>{html.escape(mix)}</td><td>{html.escape(versions)}</td></tr>"
        )
    return f'<table id="summary-table">{head}{"".join(body)}</table>'


def _alerts_table(points: Sequence[AlertPoint]) -> str:
    head = (
        "<tr><th>confirmed (event time)</th><th>stream</th><th>kind</th><th>signal</th>"
        "<th>segment</th><th>effect sd</th><th>related</th><th>reason</th></tr>"
    )
    rows = "".join(
        f"<tr><td>{_iso(p.confirmed_s)}</td><td>{html.escape(p.stream)}</td>"
        f"<td>{html.escape(p.kind)}</td>"
        f"<td>{html.escape(p.signal + (':' + p.feature if p.feature else ''))}</td>"
        f"<td>{html.escape(p.segment)}</td><td>{p.effect_sds:.2f}</td><td>{p.related}</td>"
        f"<td>{html.escape(p.reason)}</td></tr>"
        for p in points
    )
    return f'<table id="alerts-table">{head}{rows}</table>'


def _bench_table(results: Sequence[dict[str, Any]]) -> str:
    out = []
    for r in results:
        rows = "".join(
            f"<tr><td>{html.escape(str(row.get('metric')))}</td>"
            f"<td>{_fmt(row.get('value'))} {html.escape(str(row.get('unit', '')))}</td>"
            f"<td>{html.escape(str(row.get('baseline_name', '')))}</td>"
            f"<td>{_fmt(row.get('baseline'))}</td><td>{_fmt(row.get('ratio'))}</td>"
            f"<td>{html.escape(str(row.get('agrees', '')))}</td></tr>"
            for row in r.get("rows", [])
        )
        cond = html.escape(json.dumps(r.get("conditions", {}), sort_keys=True))
        out.append(
            f"<h3>bench {html.escape(str(r.get('bench')))}</h3><p class=note>{cond}</p>"
            "<table><tr><th>metric</th><th>value</th><th>baseline</th><th>baseline value</th>"
            f"<th>ratio</th><th>agrees</th></tr>{rows}</table>"
        )
    return "".join(out)


def _iso(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    return datetime.fromtimestamp(seconds, tz=UTC).isoformat(timespec="seconds")


@dataclass
class ReportInputs:
    """Everything a report is drawn from (step 1's result)."""

    streams: list[StreamData]
    alerts: Alerts
    realised: list[dict[str, Any]]
    bench: list[dict[str, Any]]
    sources: list[str]


def render(inputs: ReportInputs, *, title: str = "streamscore run report") -> str:
    """Steps 2-3: the whole HTML document."""
    data = inputs.streams
    summaries = [
        summarise(
            d.stream,
            event_time_s=d.event_time_s,
            latency_s=d.latency_s,
            decisions=d.decisions,
            degraded=d.degraded,
            scores=d.scores,
            model_versions=d.model_versions,
        )
        for d in data
    ]
    sections: dict[str, str] = {}
    if data:
        span = ", ".join(
            f"{s.stream}: {_iso(s.first_event_s)} → {_iso(s.last_event_s)}" for s in summaries
        )
        sections["summary"] = summary_table(summaries) + f"<p class=note>event time {span}</p>"
        slow = [
            s.stream
            for s in summaries
            if s.latency_s.p50 is not None and s.latency_s.p50 > SIMULATED_CLOCK_S
        ]
        note = (
            "<p class=note>Latency is decided_at − event_time of each logged decision. "
            + (
                f"For {', '.join(slow)} its median is over {SIMULATED_CLOCK_S:.0f} s: their "
                "event times are on a simulated clock, so this is not a latency."
                if slow
                else "The producers stamped events with the wall clock."
            )
            + "</p>"
        )
        hist, over_time = plot_latency(data)
        sections["latency"] = note + hist + over_time
        sections["decision-mix"] = plot_mix(data)
        sections["scores"] = plot_scores(data)
    else:
        sections["summary"] = "<p>No scored events found.</p>"
    points = drift_timeline(
        (msgspec.structs.asdict(a) for a in inputs.alerts.alerts), lambda t: t.timestamp()
    )
    if points:
        sections["drift"] = plot_drift(points) + _alerts_table(points)
    elif inputs.alerts.alerts or inputs.alerts.rejected or "alerts" in " ".join(inputs.sources):
        sections["drift"] = "<p>No drift alert in the input.</p>"
    if inputs.alerts.rejected:
        sections["drift"] = sections.get("drift", "") + (
            f"<p class=note>{inputs.alerts.rejected} record(s) rejected by the drift_alert "
            f"contract: {html.escape('; '.join(inputs.alerts.reasons))}</p>"
        )
    series = [s for r in inputs.realised for s in realised_series(r)]
    if series:
        sections["realised"] = plot_realised(series)
    if inputs.bench:
        sections["bench"] = _bench_table(inputs.bench)
    toc = " · ".join(f'<a href="#{k}">{v}</a>' for k, v in SECTIONS.items() if k in sections)
    body = "".join(
        f'<section id="{k}"><h2>{v}</h2>{sections[k]}</section>'
        for k, v in SECTIONS.items()
        if k in sections
    )
    sources = "".join(f"<li>{html.escape(s)}</li>" for s in inputs.sources)
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>"
        f"<p class=note>written {_iso(time.time())} from:</p><ul class=note>{sources}</ul>"
        f"<p>{toc}</p>{body}</body></html>"
    )


def write_report(out: Path, document: str) -> Path:
    """Step 4: the file, published atomically (temp file, fsync, rename)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    publish(
        out.parent,
        out.name,
        lambda p: p.write_text(document, encoding="utf-8"),
        temp_prefix=f".{out.name}-",
    )
    return out


def build_report(
    *,
    scored: Path | None,
    streams: Sequence[str] = (),
    alerts_files: Sequence[Path] = (),
    alerts_topic: str | None = None,
    settings: Settings | None = None,
    realised: Sequence[Path] = (),
    bench: Sequence[Path] = (),
) -> ReportInputs:
    """Step 1: read every input."""
    sources: list[str] = []
    data: list[StreamData] = []
    if scored is not None:
        for stream in streams or streams_in(scored):
            d = load_stream(scored, stream)
            if d is not None:
                data.append(d)
                sources.append(f"scored log {scored / stream}: {len(d.decisions):,} events")
    alerts = Alerts()
    for f in alerts_files:
        read_alerts_file(f, alerts)
        sources.append(f"alerts file {f}")
    if alerts_topic is not None:
        assert settings is not None, "reading a topic needs the settings"
        read_alerts_topic(settings, alerts_topic, alerts)
        sources.append(f"alerts topic {alerts_topic} from the beginning")
    reports = read_realised(realised)
    sources += [f"realised report {r.get('stream')} at {r.get('watermark')}" for r in reports]
    results = read_bench(bench)
    sources += [f"bench {r.get('bench')}" for r in results]
    return ReportInputs(data, alerts, reports, results, sources)
