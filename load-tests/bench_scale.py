"""``streamscore bench scale``: 1, 2 and 4 fused pipelines in one consumer group (live stack).

Scale-out in streamscore is Kafka's: more partitions, more processes in the
same consumer group, each process owning a share of the partitions. This bench
runs ``streamscore pipeline`` (features on Redis + decision, one hop) as 1, 2
and 4 processes of one group on input topics of ``--partitions`` (12)
partitions, with transactions of the ``small`` world re-stamped with their send
time, and per configuration measures:

1. **Drain**: a backlog of ``--backlog`` events is published as fast as the
   producer goes; throughput is the backlog over the span from the first send
   to the last of its decisions read by a tailing consumer. Each process's
   ``streamscore_decisions_total`` (its own ``/metrics``) is read before and
   after, giving its share of the decisions and its own throughput: the work
   must spread evenly and the per-process figure must not collapse.
2. **Paced**: ``--rate`` events/s for ``--duration`` s (by default 40 % of what
   one process drained, so that one process sustains it); latency is the
   decision's receipt by the tailing consumer minus the event record's
   producer timestamp (one clock), p50 and p99.

Then a **churn** phase (``--churn-duration`` s at the paced rate, fresh topics):
the group goes 2 → 4 processes, one leaves by SIGTERM, one is killed by
SIGKILL (its uncommitted batch is redelivered: duplicates, never losses), one
joins (→ 3). The oracle (DESIGN.md §6) reads every decision: lost (ids without
a decision) must be 0, conflicting duplicates (two different decisions for one
id) 0; duplicates are reported.

Also per configuration: CPU seconds of the pipelines (``/proc``), of the Redis
server (``INFO cpu``) and of the local Kafka broker (``/proc``) per drained
event — the stack's figures are upper bounds, other work shares it — feature-state
conflicts (batches recomputed because another process wrote the same entity)
and the broker's log bytes per event per topic.

``--deployment two-stage`` runs each unit as a faust feature processor
(``streamscore processor``) plus a scorer (``streamscore scorer``) instead, in
their own two groups; a unit's figures are the sum of its two processes.

The baseline of every figure is the one-process configuration, so the ratios
(throughput ×, per-process throughput ×, even share) are what compares across
noisy runs. Each configuration uses its own namespaced topics (deleted
afterwards) and a Redis database of its own (``--redis-db``, flushed per
configuration).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from importlib.metadata import version
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import redis

from streamscore.libs.config import Settings
from streamscore.libs.contracts.events import Transaction
from streamscore.libs.model.synthetic import train_synthetic_model
from streamscore.libs.topics import STREAMS, TopicSpec, dlq_topic
from streamscore.services.clients import endpoints, make_admin, make_producer
from streamscore.services.decision_tail import DecisionTail
from streamscore.services.scorer import default_policy
from streamscore.services.stack import KAFKA_VERSION
from streamscore.services.topics_admin import create_topics


def _support() -> ModuleType:
    """``scale_support.py`` next to this file (benchmarks are loaded by path)."""
    path = Path(__file__).with_name("scale_support.py")
    spec = importlib.util.spec_from_file_location("streamscore_bench_scale_support", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses and Structs resolve their module
    spec.loader.exec_module(module)
    return module


sup = _support()
S = STREAMS["transactions"]
WARM = 300
DEPLOYMENTS = {
    "fused": "streamscore pipeline (fused: features on Redis + decision, one hop)",
    "two-stage": "streamscore processor (faust) + streamscore scorer per unit, two hops",
}
#: Churn schedule: (fraction of the churn phase, action), starting from 2 processes.
CHURN = ((0.15, "add 2"), (0.35, "SIGTERM 1"), (0.5, "SIGKILL 1"), (0.65, "add 1"))


def parse_args(argv: list[str]) -> dict[str, Any]:
    p = argparse.ArgumentParser(prog="streamscore bench scale")
    p.add_argument("--procs", default="1,2,4", help="process counts, the first is the baseline")
    p.add_argument("--partitions", type=int, default=12, help="partitions per input topic")
    p.add_argument("--backlog", type=int, default=5000, help="events of the drain phase")
    p.add_argument(
        "--rate", type=float, default=0.0, help="paced events/s (0: 40%% of the first drain rate)"
    )
    p.add_argument("--duration", type=float, default=15.0, help="seconds of the paced phase")
    p.add_argument("--churn-duration", type=float, default=60.0, help="0 skips the churn phase")
    p.add_argument("--redis-db", type=int, default=1)
    p.add_argument(
        "--deployment",
        choices=DEPLOYMENTS,
        default="fused",
        help="a unit is a fused pipeline, or a faust processor + a scorer",
    )
    return vars(p.parse_args(argv))


class _Unit:
    """One deployment unit: a fused pipeline, or a feature processor and a scorer."""

    def __init__(self, procs: list[Any]) -> None:
        self.procs = procs

    def exited(self) -> int | None:
        """The exit code of a process of the unit that stopped, else ``None``."""
        codes = [p.popen.poll() for p in self.procs]
        return next((c for c in codes if c is not None), None)

    def pids(self) -> list[int]:
        return [p.popen.pid for p in self.procs]

    def signal(self, sig: signal.Signals) -> None:
        for p in self.procs:
            p.popen.send_signal(sig)

    def wait(self, timeout_s: float) -> None:
        """Until every process ended; one that does not within ``timeout_s`` is killed."""
        for p in self.procs:
            try:
                p.popen.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                p.popen.kill()
                p.popen.wait()

    def counters(self) -> np.ndarray:
        """The unit's counters (the scorer decides, the processor may conflict: summed)."""
        return np.sum([p.counters() for p in self.procs], axis=0)


class _Group:
    """One run: namespaced topics, a flushed Redis db, a tail, and deployment units."""

    def __init__(
        self,
        settings: Settings,
        model: Path,
        partitions: int,
        redis_db: int,
        deployment: str = "fused",
    ) -> None:
        self.ep = endpoints(settings)
        self.prefix = f"bench-scale-{uuid.uuid4().hex[:6]}."
        p = self.prefix
        self.topics = [p + t for t in (S.input_topic, S.label_topic, S.feature_topic)]
        self.topics += [p + t for t in (S.decision_topic, S.scored_log_topic)]
        self.dlqs = [dlq_topic(t) for t in self.topics[:3]]
        self.admin = make_admin(settings)
        specs = [TopicSpec(t, partitions, 1) for t in self.topics]
        create_topics(self.admin, specs + [TopicSpec(t, 1, 1) for t in self.dlqs])
        self.partitions = partitions
        url = f"{self.ep.redis_url.rsplit('/', 1)[0]}/{redis_db}"
        self.redis = redis.Redis.from_url(url)
        self.redis.flushdb()
        self.env = {**os.environ, "KAFKA_BOOTSTRAP": self.ep.kafka_bootstrap, "REDIS_URL": url}
        self.model = model
        self.deployment = deployment
        # (consumer group, topic whose partitions it must split) of each stage
        if deployment == "fused":
            self.groups = [(f"{p}streamscore-pipeline-{S.name}", self.topics[0])]
        else:
            self.groups = [
                (f"{p}streamscore-features-{S.name}", self.topics[0]),
                (f"{p}streamscore-scorer-{S.name}", self.topics[2]),
            ]
        self.producer = make_producer(settings, client_id="bench-scale")
        self.tail = DecisionTail(self.ep.kafka_bootstrap, [p + S.decision_topic])
        self.tail.start()
        self.decisions = sup.Decisions(self.tail)
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 (closed by close())
        self.procs: list[_Unit] = []

    def _start(self, args: list[str]) -> Any:
        port = sup.free_port()
        cmd = [sys.executable, "-m", "streamscore.services.cli", *args]
        cmd += ["--stream", S.name, "--topic-prefix", self.prefix]
        env = {**self.env, "STREAMSCORE_METRICS_PORT": str(port)}
        popen = subprocess.Popen(cmd, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        return sup.Proc(popen, port)

    def add(self, n: int) -> None:
        """Start ``n`` more units, each process with its own metrics port."""
        model = ["--model", str(self.model)]
        for _ in range(n):
            if self.deployment == "fused":
                self.procs.append(_Unit([self._start(["pipeline", *model])]))
            else:
                procs = [self._start(["processor"]), self._start(["scorer", *model])]
                self.procs.append(_Unit(procs))

    def remove(self, sig: signal.Signals) -> None:
        """The oldest unit leaves by ``sig`` (SIGTERM: graceful; SIGKILL: crash)."""
        unit = self.procs.pop(0)
        unit.signal(sig)
        unit.wait(60)

    def assignment(self, stage: int = 0) -> list[int]:
        """Partitions of a stage's topic per member of its group ([] while rebalancing)."""
        group_id, topic = self.groups[stage]
        fut = self.admin.describe_consumer_groups([group_id])[group_id]
        try:
            desc = fut.result(timeout=10)
        except Exception:  # the group does not exist yet
            return []
        if str(desc.state).rsplit(".", 1)[-1] != "STABLE":
            return []
        return sorted(
            sum(1 for tp in m.assignment.topic_partitions if tp.topic == topic)
            for m in desc.members
        )

    def wait_stable(self, n: int, timeout_s: float = 180.0) -> Any:
        """Until ``n`` members own all partitions in every stage's group; their partitions.

        Fused: the list of partitions per member; two-stage: that list per stage.
        """
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            a = [self.assignment(i) for i in range(len(self.groups))]
            if all(len(x) == n and sum(x) == self.partitions for x in a):
                return a[0] if len(a) == 1 else dict(zip(("processor", "scorer"), a, strict=True))
            if any(u.exited() is not None for u in self.procs):
                break
            time.sleep(0.5)
        raise SystemExit(f"groups did not settle with {n} members:\n{self.log_tail()}")

    def counters(self) -> np.ndarray:
        """Each unit's counters (one row per unit); a process that exited is an error."""
        for u in self.procs:
            if u.exited() is not None:
                msg = f"a process of pids {u.pids()} exited with {u.exited()}"
                raise SystemExit(f"{msg}:\n{self.log_tail()}")
        return np.array([u.counters() for u in self.procs])

    def send(self, events: list[Transaction], rate: float | None) -> dict[str, float]:
        return sup.send(self.producer, self.topics[0], events, rate)

    def log_tail(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-6000:]

    def close(self) -> None:
        # Processes that stopped by themselves (not by the schedule): a crash, reported.
        self.exited = [c for u in self.procs if (c := u.exited()) is not None]
        if self.exited:
            print(f"processes exited early {self.exited}:\n{self.log_tail()}", file=sys.stderr)
        for u in self.procs:
            u.signal(signal.SIGTERM)
        for u in self.procs:
            u.wait(60)
        self.tail.stop.set()
        self.tail.join()
        self.log.close()
        # Waited for: a request still queued when the bench exits is never sent.
        for topic, fut in self.admin.delete_topics([*self.topics, *self.dlqs]).items():
            try:
                fut.result(timeout=30)
            except Exception as exc:  # reported, the figures stand
                print(f"topic {topic} not deleted: {exc}", file=sys.stderr)


def _warm(group: _Group, events: list[Transaction]) -> None:
    """Services joined, compiled and deciding: the warm-up events' decisions are all read."""
    sent = group.send(events, rate=200.0)
    if not group.decisions.wait(list(sent), timeout_s=180):
        raise SystemExit(f"warm-up decisions did not arrive:\n{group.log_tail()}")


def _percentiles(sent: dict[str, float], first: dict[str, float]) -> dict[int, float]:
    lat = np.array([(first[i] - t) * 1000 for i, t in sent.items() if i in first])
    return {q: float(np.percentile(lat, q)) for q in (50, 99)}


def _config(
    n: int,
    settings: Settings,
    model: Path,
    events: list[Transaction],
    *,
    partitions: int,
    backlog: int,
    rate: float,
    duration: float,
    redis_db: int,
    deployment: str,
) -> dict[str, Any]:
    """Drain and paced phases with ``n`` processes (module docstring, steps 1-2)."""
    group = _Group(settings, model, partitions, redis_db, deployment)
    try:
        group.add(n)
        assignment = group.wait_stable(n)
        _warm(group, events[:WARM])
        drain_events = events[WARM : WARM + backlog]
        before = group.counters()
        kafka_pid = sup.kafka_pid(settings)
        pids = [pid for u in group.procs for pid in u.pids()]
        cpu0 = [sup.cpu_seconds(pid) for pid in pids]
        stack0 = sup.stack_cpu(group.redis, kafka_pid)
        t0 = time.time()
        sent = group.send(drain_events, rate=None)
        if not group.decisions.wait(list(sent), timeout_s=300):
            raise SystemExit(f"{n} processes: backlog not drained:\n{group.log_tail()}")
        span = max(group.decisions.first[i] for i in sent) - t0
        drained = group.counters()
        cpu = sum(sup.cpu_seconds(pid) for pid in pids) - sum(cpu0)
        stack_cpu = {k: v - stack0[k] for k, v in sup.stack_cpu(group.redis, kafka_pid).items()}
        per_proc = [float(x) for x in drained[:, 0] - before[:, 0]]
        paced_rate = rate or max(50.0, 50 * int(0.4 * backlog / span / 50))
        paced_events = events[WARM + backlog :][: int(paced_rate * duration)]
        print(
            f"{n} processes: drained {backlog:,} in {span:.1f} s; "
            f"{len(paced_events):,} at {paced_rate:,.0f}/s",
            file=sys.stderr,
        )
        sent = group.send(paced_events, rate=paced_rate)
        if not group.decisions.wait(list(sent), timeout_s=120):
            raise SystemExit(f"{n} processes: paced decisions missing:\n{group.log_tail()}")
        pct = _percentiles(sent, group.decisions.first)
        paced = group.counters() - drained
        published = WARM + backlog + len(paced_events)
        log_bytes = {t: b / published for t, b in sup.log_bytes(settings, group.prefix).items()}
    finally:
        group.close()
    total = sum(per_proc)
    return {
        "n": n,
        "assignment": assignment,
        "throughput": backlog / span,
        "per_proc": [c / span for c in per_proc],
        "share": [c / total for c in per_proc] if total else [0.0] * n,
        "rate": paced_rate,
        "pct": pct,
        # CPU seconds per 1,000 drained events: the pipelines, and the shared
        # Redis server and Kafka broker (upper bounds: other work uses them too)
        "cpu_per_1k": 1000 * cpu / backlog,
        "log_bytes_per_event": {t: round(b) for t, b in sorted(log_bytes.items())},
        "stack_cpu_per_1k": {k: round(1000 * v / backlog, 3) for k, v in stack_cpu.items()},
        # feature-state conflicts per 1,000 decisions: drain, paced
        "conflicts": [
            1000 * float(c[:, 1].sum() / max(c[:, 0].sum(), 1)) for c in (drained - before, paced)
        ],
    }


def _churn(
    settings: Settings,
    model: Path,
    events: list[Transaction],
    *,
    partitions: int,
    rate: float,
    duration: float,
    redis_db: int,
    deployment: str,
) -> dict[str, Any]:
    """Processes join and leave while events flow at ``rate``; the oracle afterwards."""
    group = _Group(settings, model, partitions, redis_db, deployment)
    log: list[str] = []
    try:
        group.add(2)
        group.wait_stable(2)
        _warm(group, events[:WARM])
        paced = events[WARM:][: int(rate * duration)]
        sent: dict[str, float] = {}
        sender = threading.Thread(target=lambda: sent.update(group.send(paced, rate=rate)))
        t0 = time.monotonic()
        sender.start()
        last: list[int] | None = None

        def watch(until: float) -> None:
            """Log the group's assignment whenever it changes, until ``until``."""
            nonlocal last
            while True:
                a = group.assignment()
                if a != last:
                    shown = a or "rebalancing"
                    log.append(f"t={time.monotonic() - t0:.0f}s partitions per member {shown}")
                    last = a
                if time.monotonic() >= until:
                    return
                time.sleep(min(1.0, max(0.0, until - time.monotonic())))

        for at, action in CHURN:
            watch(t0 + at * duration)
            verb, count = action.split()
            if verb == "add":
                group.add(int(count))
            else:
                group.remove(signal.Signals[verb])
            log.append(f"t={time.monotonic() - t0:.0f}s {action} -> {len(group.procs)}")
        while sender.is_alive():
            watch(time.monotonic() + 1.0)
        sender.join()
        group.decisions.wait(list(sent), timeout_s=120)
        watch(time.monotonic())
        time.sleep(3.0)  # late duplicates, if any
        group.decisions.update()
    finally:
        group.close()
    first, records = group.decisions.first, group.decisions.records
    conflicting = sum(
        1
        for i in sent
        if len({(d.decision, d.score, d.model_version) for d in records.get(i, [])}) > 1
    )
    lat = np.array([(first[i] - t) * 1000 for i, t in sent.items() if i in first])
    # Where the tail is: p99 by 5 s of send time (joins, leaves and rebalances show up).
    start = min(sent.values(), default=0.0)
    windows: dict[int, list[float]] = {}
    for i, t in sent.items():
        if i in first:
            windows.setdefault(int((t - start) // 5) * 5, []).append((first[i] - t) * 1000)
    return {
        "p99_by_5s": {
            f"{k}s": round(float(np.percentile(v, 99))) for k, v in sorted(windows.items())
        },
        "events": len(sent),
        "lost": sum(1 for i in sent if i not in first),
        "dup": sum(len(records[i]) - 1 for i in sent if i in records),
        "conflicting": conflicting,
        "p99": float(np.percentile(lat, 99)) if len(lat) else float("nan"),
        "max": float(lat.max()) if len(lat) else float("nan"),
        "log": log,
        "exited_early": group.exited,
    }


def _rows(configs: list[dict[str, Any]], churn: dict[str, Any] | None) -> list[dict[str, Any]]:
    base = configs[0]
    bn = f"{base['n']} process{'es' if base['n'] > 1 else ''}"
    rows: list[dict[str, Any]] = []
    for c in configs:
        n = c["n"]
        mean_pp = float(np.mean(c["per_proc"]))
        base_pp = float(np.mean(base["per_proc"]))
        even = 1.0 / n
        rows += [
            {
                "metric": f"drain throughput, {n} processes",
                "value": round(c["throughput"], 1),
                "unit": "events/s",
                "baseline_name": bn,
                "baseline": round(base["throughput"], 1),
                "ratio": round(c["throughput"] / base["throughput"], 3),
                "better": "higher",
            },
            {
                "metric": f"per-process drain throughput, {n} processes (mean)",
                "value": round(mean_pp, 1),
                "unit": "events/s",
                "baseline_name": bn,
                "baseline": round(base_pp, 1),
                "ratio": round(mean_pp / base_pp, 3) if base_pp else None,
                "better": "higher",
            },
            {
                "metric": f"decision share per process, {n} processes: min",
                "value": round(min(c["share"]), 4),
                "unit": f"share (max {max(c['share']):.4f})",
                "baseline_name": "even split 1/n",
                "baseline": round(even, 4),
                "ratio": round(min(c["share"]) / even, 3),
                "better": "higher",
            },
        ]
        per_cpu = 1000 / c["cpu_per_1k"] if c["cpu_per_1k"] else 0.0
        base_cpu = 1000 / base["cpu_per_1k"] if base["cpu_per_1k"] else 0.0
        rows.append(
            {
                "metric": f"events per pipeline CPU-second (drain), {n} processes",
                "value": round(per_cpu, 1),
                "unit": "events/s per core",
                "baseline_name": bn,
                "baseline": round(base_cpu, 1),
                "ratio": round(per_cpu / base_cpu, 3) if base_cpu else None,
                "better": "higher",
            }
        )
        rows.append(
            {
                "metric": f"feature-state conflicts, {n} processes (paced)",
                "value": round(c["conflicts"][1], 2),
                "unit": f"per 1,000 decisions (drain {c['conflicts'][0]:.2f})",
                "better": "lower",
            }
        )
        for q in (50, 99):
            rows.append(
                {
                    "metric": f"p{q} at {c['rate']:,.0f} events/s, {n} processes",
                    "value": round(c["pct"][q], 2),
                    "unit": "ms",
                    "baseline_name": bn,
                    "baseline": round(base["pct"][q], 2),
                    "ratio": round(base["pct"][q] / c["pct"][q], 3),
                    "better": "lower",
                }
            )
    if churn is not None:
        rows += [
            {
                "metric": "churn 2->4->2->3 (SIGTERM, SIGKILL): lost / duplicate / conflicting",
                "value": churn["lost"],
                "unit": f"lost (dup {churn['dup']}, conflicting {churn['conflicting']})",
                "better": "lower",
            },
            {
                "metric": "churn: p99 / max latency",
                "value": round(churn["p99"], 1),
                "unit": f"ms p99 (max {churn['max']:,.0f} ms)",
                "better": "lower",
            },
        ]
    return rows


def run(
    procs: str = "1,2,4",
    partitions: int = 12,
    backlog: int = 5000,
    rate: float = 0.0,
    duration: float = 15.0,
    churn_duration: float = 60.0,
    redis_db: int = 1,
    deployment: str = "fused",
    settings: Settings | None = None,
) -> dict[str, Any]:
    settings = settings or Settings()
    counts = [int(x) for x in procs.split(",") if x]
    load = os.getloadavg()
    max_rate = rate or 2000.0
    n_events = WARM + max(backlog + int(max_rate * duration), int(max_rate * churn_duration))
    events = sup.events(n_events)
    configs: list[dict[str, Any]] = []
    churn: dict[str, Any] | None = None
    with tempfile.TemporaryDirectory() as tmp:
        train_synthetic_model(
            Path(tmp),
            name="bench",
            version="bench-scale-1",
            thresholds=default_policy("transactions").thresholds,
            trees=100,
            depth=5,
        )
        common = {"partitions": partitions, "redis_db": redis_db, "deployment": deployment}
        for n in counts:
            c = _config(
                n,
                settings,
                Path(tmp),
                events,
                backlog=backlog,
                rate=rate,
                duration=duration,
                **common,
            )
            rate = rate or c["rate"]  # the first configuration fixes the paced rate
            configs.append(c)
        if churn_duration > 0:
            print(f"churn: {churn_duration:.0f} s at {rate:,.0f}/s", file=sys.stderr)
            churn = _churn(
                settings,
                Path(tmp),
                events,
                rate=rate,
                duration=churn_duration,
                **common,
            )
    conditions: dict[str, Any] = {
        "deployment": DEPLOYMENTS[deployment],
        "stream": "transactions (small world, re-stamped with send time), key = customer",
        "partitions": partitions,
        "backlog_events": backlog,
        "paced_rate_per_s": rate,
        "paced_seconds": duration,
        "partitions_per_process": {c["n"]: c["assignment"] for c in configs},
        "decision_share_per_process": {c["n"]: [round(s, 3) for s in c["share"]] for c in configs},
        "kafka_log_bytes_per_event": configs[0]["log_bytes_per_event"] if configs else {},
        "stack_cpu_seconds_per_1000_drained_events": {
            c["n"]: c["stack_cpu_per_1k"] for c in configs
        },
        "model": "xgboost 100 trees depth 5, ONNX",
        "latency": "producer record timestamp -> decision received by a tailing consumer",
        "kafka": f"{KAFKA_VERSION} (one broker, KRaft)",
        "kafka_python_client": f"confluent-kafka {version('confluent-kafka')}",
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "load_average_at_start": [round(x, 2) for x in load],
        "machine": "shared: Kafka, Redis, the bench and every process on the same cores",
    }
    if churn is not None:
        conditions["churn"] = {
            "seconds": churn_duration,
            "events": churn["events"],
            "schedule": churn["log"],
            "p99_ms_by_5s_of_send_time": churn["p99_by_5s"],
            "processes_exited_early": churn["exited_early"],
        }
    return {"bench": "scale", "conditions": conditions, "rows": _rows(configs, churn)}
