"""The demo's live view: what the loop is doing, from the topics it writes.

A consumer thread tails every decision topic, the alert topics and the
labelled examples (from their end when the view starts) and keeps rolling
figures per stream: decisions per second (last 5 s), end-to-end latency
(publish time of the event, recorded by the demo's producer, to the decision
read here; last 5,000 events), the decision mix, degraded decisions, the model
versions deciding, and the alerts and labelled examples as they come. With a
``rollout`` reader (the demo reads the model store in Redis) a snapshot also
says which model is champion, the challenger's stage (shadow, canary and its
share, ready for approval) and the store's last challenger move.
:func:`render` turns a snapshot into a table for the terminal.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec
import numpy as np
from confluent_kafka import Consumer
from rich.table import Table

from streamscore.libs.kafka_config import KafkaConf
from streamscore.libs.topics import ALERT_TOPICS, LABELLED_EXAMPLES_TOPIC, STREAMS

RATE_WINDOW_S = 5.0
LATENCY_SAMPLES = 5000
MAX_PENDING = 500_000


class _Decision(msgspec.Struct):
    event_id: str
    decision: str
    model_version: str
    degraded: str | None = None


@dataclass
class StreamFigures:
    """Rolling figures of one stream."""

    decisions: int = 0
    recent: deque[float] = field(default_factory=deque)
    latency_ms: deque[float] = field(default_factory=lambda: deque(maxlen=LATENCY_SAMPLES))
    mix: Counter[str] = field(default_factory=Counter)
    degraded: int = 0
    models: Counter[str] = field(default_factory=Counter)


class SendTimes:
    """When the demo published each event (event id → wall time), bounded."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._at: dict[str, float] = {}

    def add(self, event_id: str, at: float) -> None:
        with self._lock:
            self._at[event_id] = at
            if len(self._at) > MAX_PENDING:  # decisions never came for the oldest
                del self._at[next(iter(self._at))]

    def __len__(self) -> int:
        with self._lock:
            return len(self._at)

    def pop(self, event_id: str) -> float | None:
        with self._lock:
            return self._at.pop(event_id, None)


class LiveView(threading.Thread):
    """Tails the output topics of the loop (see the module docstring)."""

    def __init__(
        self,
        bootstrap: str,
        prefix: str,
        sent: SendTimes,
        *,
        security: KafkaConf | None = None,
        rollout: Callable[[], dict[str, str]] | None = None,
    ) -> None:
        super().__init__(daemon=True, name="demo-view")
        self.sent = sent
        self._rollout = rollout
        self.streams = {name: StreamFigures() for name in STREAMS}
        self._by_topic = {prefix + s.decision_topic: name for name, s in STREAMS.items()}
        self._alert_topics = {prefix + t for t in ALERT_TOPICS}
        self._examples_topic = prefix + LABELLED_EXAMPLES_TOPIC
        self.alerts: deque[str] = deque(maxlen=6)
        self.alert_count = 0
        self.examples: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._halt = threading.Event()
        self.consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"streamscore-demo-view-{time.time_ns()}",
                "auto.offset.reset": "latest",
                "enable.auto.commit": False,
                "fetch.wait.max.ms": 100,
                **(security or {}),
            }
        )
        topics = [*self._by_topic, *self._alert_topics, self._examples_topic]
        self.consumer.subscribe(topics)

    def run(self) -> None:
        while not self._halt.is_set():
            # poll(): returns as soon as one record is there (latency stays honest).
            m = self.consumer.poll(0.1)
            if m is None or m.error() is not None:
                continue
            self._record(m.topic() or "", m.value() or b"", time.time())
        self.consumer.close()

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=5)

    def _record(self, topic: str, value: bytes, now: float) -> None:
        with self._lock:
            stream = self._by_topic.get(topic)
            if stream is not None:
                d = msgspec.json.decode(value, type=_Decision)
                f = self.streams[stream]
                f.decisions += 1
                f.recent.append(now)
                f.mix[d.decision] += 1
                f.models[d.model_version] += 1
                f.degraded += d.degraded is not None
                sent = self.sent.pop(d.event_id)
                if sent is not None:
                    f.latency_ms.append((now - sent) * 1000)
            elif topic in self._alert_topics:
                self.alert_count += 1
                a = msgspec.json.decode(value)
                what = ", ".join(f"{k}={a[k]}" for k in ("stream", "detector", "segment") if k in a)
                self.alerts.append(f"{time.strftime('%H:%M:%S')} {topic}: {what or value[:80]!r}")
            elif topic == self._examples_topic:
                ex = msgspec.json.decode(value)
                self.examples[str(ex.get("kind", "example"))] += 1

    def snapshot(self) -> dict[str, Any]:
        """The current figures (plain data: for the table, the final summary and tests)."""
        now = time.time()
        out: dict[str, Any] = {"streams": {}, "alerts": [], "examples": {}}
        with self._lock:
            for name, f in self.streams.items():
                while f.recent and f.recent[0] < now - RATE_WINDOW_S:
                    f.recent.popleft()
                lat = np.array(f.latency_ms) if f.latency_ms else None
                out["streams"][name] = {
                    "decisions": f.decisions,
                    "per_s": len(f.recent) / RATE_WINDOW_S,
                    "p50_ms": None if lat is None else float(np.percentile(lat, 50)),
                    "p95_ms": None if lat is None else float(np.percentile(lat, 95)),
                    "p99_ms": None if lat is None else float(np.percentile(lat, 99)),
                    "mix": dict(f.mix),
                    "degraded": f.degraded,
                    "models": sorted(f.models),
                }
            out["alerts"] = list(self.alerts)
            out["alert_count"] = self.alert_count
            out["examples"] = dict(self.examples)
        if self._rollout is not None:
            try:
                out["rollout"] = self._rollout()
            except Exception as exc:  # the view shows what it cannot read, it never stops
                out["rollout"] = {"error": f"{type(exc).__name__}: {exc}"[:120]}
        return out


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:,.1f}"


def render(snap: dict[str, Any], *, elapsed_s: float, sim_clock: str) -> Table:
    """The live table of a :meth:`LiveView.snapshot`."""
    table = Table(
        title=f"streamscore live — {elapsed_s:,.0f} s, simulated clock {sim_clock}",
        caption=_caption(snap),
        caption_justify="left",
    )
    for col in ("stream", "decisions", "/s", "p50 ms", "p95 ms", "p99 ms", "mix", "degraded"):
        table.add_column(col, justify="left" if col in ("stream", "mix") else "right")
    table.add_column("models")
    for name, s in snap["streams"].items():
        total = max(1, s["decisions"])
        mix = " ".join(f"{k} {100 * v / total:.1f}%" for k, v in sorted(s["mix"].items()))
        table.add_row(
            name,
            f"{s['decisions']:,}",
            f"{s['per_s']:,.0f}",
            _ms(s["p50_ms"]),
            _ms(s["p95_ms"]),
            _ms(s["p99_ms"]),
            mix,
            f"{s['degraded']:,}",
            ", ".join(s["models"]),
        )
    return table


def _caption(snap: dict[str, Any]) -> str:
    lines = [
        f"alerts: {snap['alert_count']}"
        + ("" if not snap["alerts"] else "\n  " + "\n  ".join(snap["alerts"])),
        "labelled examples: "
        + (", ".join(f"{k} {v:,}" for k, v in sorted(snap["examples"].items())) or "none yet"),
    ]
    if rollout := snap.get("rollout"):
        lines.append(
            "transactions models: " + "; ".join(f"{k} {v}" for k, v in rollout.items() if v)
        )
    return "\n".join(lines)
