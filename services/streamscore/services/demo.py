"""The main job: the whole loop, live, on the local stack (``streamscore demo``).

1. Start Kafka and Redis (``streamscore up``, unless they run or the
   environment points elsewhere) and create the topics.
2. Train the transactions model (:func:`initial_model`) and write it where the
   services load it from.
3. Start every service as its own process (:class:`Supervisor`): a fused
   pipeline per stream (features on Redis, decision, scored-event log), a
   drift monitor per stream (scored-event log -> ``alerts.drift``), the
   scored-event log's Parquet sink, the transactions label joiner (labels ->
   labelled examples, maturity horizon ``--horizon``, 30 simulated days by
   default so that examples mature within minutes), the transactions
   retrainer (10,000 new matured examples or the monitor's trigger -> a
   gated challenger that moves shadow -> canary -> champion by itself in the
   pipeline, ``--promote auto``, or waits for ``streamscore model promote``,
   the default), and the HTTP API; each with a Prometheus ``/metrics`` port on
   loopback.
4. Stream the simulated world — transactions, logins, sensor readings, clicks
   and their delayed labels — on an accelerated clock (``--speedup`` simulated
   seconds per wall second), moved so that it starts now.
5. Show what happens, live (:mod:`.demo_view`): decisions per second and
   end-to-end latency per stream, the decision mix, degraded decisions, the
   models deciding, alerts and labelled examples as they come, and the
   transactions champion and challenger (stage, share, last move) from the
   model store.
6. On Ctrl-C or after ``--duration``: stop publishing, let the last decisions
   arrive, stop every service (SIGTERM, then SIGKILL after a grace period), stop
   the stack if the demo started it, and print a summary with the oracle's
   count of events that got no decision.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.live import Live

from streamscore.libs.config import Settings
from streamscore.libs.model.synthetic import train_synthetic_model
from streamscore.libs.security import kafka_security_config
from streamscore.libs.simulator.records import SimRecord
from streamscore.libs.simulator.retime import starting_at
from streamscore.libs.simulator.scenario import get
from streamscore.libs.topics import STREAMS, TopicSpec, catalogue
from streamscore.services import stack
from streamscore.services.clients import endpoints, make_admin, make_producer, make_redis
from streamscore.services.demo_view import LiveView, SendTimes, render
from streamscore.services.model_store import ModelStore
from streamscore.services.scorer import default_policy
from streamscore.services.sim_producer import publish
from streamscore.services.supervisor import Supervisor
from streamscore.services.topics_admin import create_topics

Progress = Callable[[str], None]
INPUT_TOPICS = {s.input_topic for s in STREAMS.values()}
#: Simulated days generated when the demo runs until stopped (lazily, a day at a time).
OPEN_ENDED_DAYS = 3650


@dataclass(frozen=True)
class DemoOptions:
    """What ``streamscore demo`` was asked for."""

    duration_s: float | None = None
    speedup: float = 2880.0
    scenario: str = "small"
    seed: int = 7
    topic_prefix: str = ""
    api_port: int = 8080
    live: bool = True
    #: The label joiner's maturity horizon (simulated time) and the retrainer's promotion.
    horizon: str = "30d"
    promote: str = "approval"


def _free_port(preferred: int | None = None) -> int:
    for port in (preferred, 0):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port or 0))
            except OSError:
                continue
            return int(s.getsockname()[1])
    raise RuntimeError("no free port on 127.0.0.1")


def initial_model(out: Path) -> Path:
    """The transactions model the demo starts with (trained before any event is scored)."""
    if not (out / "manifest.json").exists():
        train_synthetic_model(
            out,
            name="tx-fraud-demo",
            version="tx-fraud-demo-1",
            thresholds=default_policy("transactions").thresholds,
        )
    return out


def _topics(settings: Settings, prefix: str) -> int:
    specs = [
        TopicSpec(prefix + t.name, t.partitions, t.replication, t.config, t.purpose)
        for t in catalogue(settings.topic_partitions, settings.topic_replication)
    ]
    outcomes = create_topics(make_admin(settings), specs)
    return sum(o.status == "created" for o in outcomes)


def _start_services(sup: Supervisor, opts: DemoOptions, model: Path, home: Path) -> dict[str, Any]:
    prefix = ["--topic-prefix", opts.topic_prefix]
    ports: dict[str, Any] = {}
    for stream in STREAMS:
        args = ["pipeline", "--stream", stream, *prefix]
        if stream == "transactions":
            args += ["--model", str(model)]
        port = _free_port()
        sup.start(f"pipeline-{stream}", args, metrics_port=port)
        ports[f"pipeline-{stream}"] = port
        port = _free_port()  # drift monitor of the stream's scored-event log -> alerts.drift
        sup.start(f"monitor-{stream}", ["monitor", "--stream", stream, *prefix], metrics_port=port)
        ports[f"monitor-{stream}"] = port
    port = _free_port()
    scored = home / "scored" / (opts.topic_prefix.rstrip(".") or "main")  # one folder per topic
    sup.start(
        "scored-sink",
        ["scored-sink", "--stream", "transactions", "--out", str(scored), *prefix],
        metrics_port=port,
    )
    ports["scored-sink"] = port
    examples = home / "examples" / (opts.topic_prefix.rstrip(".") or "main")
    port = _free_port()  # labels joined back to the scored events -> labelled examples
    sup.start(
        "joiner-transactions",
        ["joiner", "--stream", "transactions", "--out", str(examples),
         "--horizon", opts.horizon, *prefix],
        metrics_port=port,
    )  # fmt: skip
    ports["joiner-transactions"] = port
    port = _free_port()  # matured examples / drift -> a challenger that progresses by itself
    sup.start(
        "retrainer-transactions",
        ["retrainer", "--stream", "transactions", "--examples", str(examples),
         "--min-new-examples", "10000", "--min-interval-hours", "168", "--train-days", "7",
         "--delay-days", "3", "--test-days", "3", "--jobs", "1", "--progress",
         "--promote", opts.promote, "--horizon", opts.horizon, *prefix],
        metrics_port=port,
    )  # fmt: skip
    ports["retrainer-transactions"] = port
    api_port = _free_port(opts.api_port)
    sup.start(
        "api",
        ["api", "--port", str(api_port), "--model", f"transactions={model}", *prefix],
    )
    ports["api"] = api_port
    return ports


def rollout_reader(settings: Settings) -> Callable[[], dict[str, str]]:
    """The transactions champion and challenger from the model store, for the live view."""
    store = ModelStore(make_redis(settings, timeout_s=1.0))

    def read() -> dict[str, str]:
        active, ch = store.active("transactions"), store.challenger("transactions")
        out = {"champion": active.version if active is not None else "(the --model folder)"}
        if ch is not None:
            stage = ch.mode + (f" {100 * ch.share:.0f}%" if ch.mode == "canary" else "")
            if ch.ready:
                stage += ", ready: awaiting `streamscore model promote`"
            out["challenger"] = f"{ch.ref.version} ({stage})"
        log = store.challenger_log("transactions")[:1]
        if log:
            e = log[0]
            out["last"] = f"{e.action} {e.challenger.ref.version} by {e.by} at {e.at:%H:%M:%S}"
        return out

    return read


def _wait_api(port: int, sup: Supervisor, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if dead := sup.dead():
            raise RuntimeError(f"{dead[0].name} exited:\n{dead[0].tail()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError("the API did not become ready")


class _Feed(threading.Thread):
    """Publishes the simulated world on the accelerated clock until stopped."""

    def __init__(self, settings: Settings, opts: DemoOptions, sent: SendTimes) -> None:
        super().__init__(daemon=True, name="demo-feed")
        self.settings, self.opts, self.sent = settings, opts, sent
        self.stop = threading.Event()
        self.clock = "-"
        self.published = 0
        self.error: BaseException | None = None

    def _records(self) -> Iterator[SimRecord]:
        o = self.opts
        days = OPEN_ENDED_DAYS
        if o.duration_s is not None:
            days = int(o.duration_s * o.speedup / 86_400) + 2
        world = get(o.scenario).with_days(days).records(seed=o.seed)
        for r in starting_at(world, datetime.now(tz=UTC)):
            if self.stop.is_set():
                return
            yield r

    def _on_send(self, r: SimRecord) -> None:
        self.published += 1
        self.clock = f"{r.event.event_time:%Y-%m-%d %H:%M}"
        if r.topic in INPUT_TOPICS:
            self.sent.add(r.event.event_id, time.time())

    def run(self) -> None:
        try:
            publish(
                self._records(),
                make_producer(self.settings, client_id="streamscore-demo"),
                speedup=self.opts.speedup,
                duration_s=self.opts.duration_s,
                topic_prefix=self.opts.topic_prefix,
                progress=lambda _m: None,
                on_send=self._on_send,
            )
        except BaseException as exc:  # shown by the main thread, which stops the demo
            self.error = exc


def run_demo(settings: Settings, opts: DemoOptions, progress: Progress = print) -> int:
    """Steps 1-6 of the module docstring; 0 when every published event got a decision."""
    was_running = stack.status(settings) is not None
    info = stack.up(settings, progress=progress)  # step 1
    progress(f"topics: {_topics(settings, opts.topic_prefix)} created")
    home = settings.home / "demo"
    progress("training the transactions model ...")  # step 2
    model = initial_model(home / "models" / "transactions")
    ep = endpoints(settings)
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP": ep.kafka_bootstrap,
        "REDIS_URL": ep.redis_url,
        # The accelerated clock publishes events days ahead of the wall clock on purpose.
        "STREAMSCORE_EVENT_TIME_MAX_AHEAD_S": "0",
    }
    sup = Supervisor(home / "logs", env)
    sent = SendTimes()
    view = LiveView(
        ep.kafka_bootstrap,
        opts.topic_prefix,
        sent,
        security=kafka_security_config(settings),
        rollout=rollout_reader(settings.model_copy(update={"redis_url": ep.redis_url})),
    )
    feed = _Feed(settings, opts, sent)
    started = time.monotonic()
    snap: dict[str, Any] = {}
    failure: str | None = None
    try:
        ports = _start_services(sup, opts, model, home)  # step 3
        _wait_api(ports["api"], sup)
        progress(
            f"API on http://127.0.0.1:{ports['api']} (docs at /docs, metrics at /metrics); "
            f"service metrics on 127.0.0.1 ports "
            + ", ".join(f"{k}={v}" for k, v in ports.items() if k != "api")
            + f"; logs in {home / 'logs'}"
        )
        view.start()
        feed.start()  # step 4
        started = time.monotonic()
        failure = _watch(view, feed, sup, opts, started)  # step 5
    except KeyboardInterrupt:
        progress("stopping ...")
    except RuntimeError as exc:
        failure = str(exc)
    finally:
        # Step 6, each part whatever happened before it: no process is left behind.
        feed.stop.set()
        if feed.is_alive():
            feed.join(timeout=30)
            time.sleep(3.0)  # the last decisions in flight
        if view.is_alive():
            snap = view.snapshot()
            view.stop()
        codes = sup.stop()
        if not was_running and info.managed:
            stack.down(settings, progress=progress)
    return _summary(snap, feed, codes, failure, time.monotonic() - started)


def _watch(
    view: LiveView, feed: _Feed, sup: Supervisor, opts: DemoOptions, started: float
) -> str | None:
    """Refresh the live view until the duration passed; a dead service stops the demo."""

    def table() -> Any:
        return render(view.snapshot(), elapsed_s=time.monotonic() - started, sim_clock=feed.clock)

    def check() -> str | None:
        if dead := sup.dead():
            return f"{dead[0].name} exited:\n{dead[0].tail()}"
        if feed.error is not None:
            return f"the feed failed: {feed.error!r}"
        return None

    if not opts.live:  # a line every 5 s (logs, CI, a pipe)
        while feed.is_alive():
            time.sleep(1.0)
            if problem := check():
                return problem
            if int(time.monotonic() - started) % 5 == 0:
                print(_line(view.snapshot(), feed), flush=True)
        return check()
    with Live(table(), console=Console(), refresh_per_second=1) as live:
        while feed.is_alive():  # until the duration passed (or the scenario ended)
            time.sleep(1.0)
            live.update(table())
            if problem := check():
                return problem
    return check()


def _line(snap: dict[str, Any], feed: _Feed) -> str:
    parts = [f"clock {feed.clock}"]
    for name, s in snap["streams"].items():
        p99 = "-" if s["p99_ms"] is None else f"{s['p99_ms']:.0f}"
        parts.append(f"{name} {s['decisions']:,} ({s['per_s']:.0f}/s, p99 {p99} ms)")
    return "; ".join(parts)


def _summary(
    snap: dict[str, Any],
    feed: _Feed,
    codes: dict[str, int | None],
    failure: str | None,
    elapsed_s: float,
) -> int:
    console = Console()
    if not console.is_terminal:  # a log or a pipe: no 80-column wrapping of the table
        console = Console(width=160)
    if snap:
        console.print(render(snap, elapsed_s=elapsed_s, sim_clock=feed.clock))
    decided = sum(s["decisions"] for s in snap.get("streams", {}).values())
    console.print(
        f"published {feed.published:,} records in {elapsed_s:,.0f} s; {decided:,} decisions read, "
        f"{len(feed.sent):,} events without a decision yet; "
        f"services stopped: "
        + ", ".join(f"{k} {'killed' if v is None else f'exit {v}'}" for k, v in codes.items())
    )
    if failure:
        console.print(f"[red]demo stopped: {failure}[/red]")
        return 1
    return 0
