"""Redis slow, then silent, under the sync scoring API (FAULTS F7): degraded, never held, no 5xx.

``streamscore api`` runs as its own process with every Redis connection going
through a :class:`~tests.latency_proxy.LatencyProxy` on loopback. Scoring
requests arrive open-loop at a fixed rate while the proxy goes through the
phases: normal, +50 ms per round trip, +500 ms, blackhole (accepts, never
answers), normal again. The figures per phase (latency p50/p99/max from each
request's scheduled time, share of degraded decisions, breaker openings) are
printed; the checks are behavioural:

- every request is answered 200 (no 5xx, nothing held until a client timeout);
- with a normal store no decision is degraded (unless the request itself took
  the deadline: a CPU-starved machine, not the store); while the store cannot answer
  within the feature step's deadline (+500 ms, blackhole) every decision is,
  and says why (``degraded``, feature statuses ``ERROR``);
- the breaker opened (the metric) and, once the store is back, decisions are
  feature-based again: the last requests are not degraded;
- the oracle: every answered decision is in ``decisions.transactions`` once.

The suite's report (``tests/fault_report.py``) takes a request as the input,
timed when it was due, and its decision record as the output; the fault is the
store's disturbance (from the +50 ms change until the store is back).
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import httpx
import msgspec
import numpy as np
import pytest

from streamscore.libs.config import Settings
from streamscore.libs.contracts.codec import encode
from streamscore.libs.simulator.scenario import get
from streamscore.libs.topics import STREAMS, TopicSpec
from streamscore.services.api.auth import issue_token
from streamscore.services.clients import make_admin
from streamscore.services.topics_admin import create_topics
from tests.fault_report import Sent, decision, fault_report, outs_from
from tests.latency_proxy import LatencyProxy
from tests.processor_runs import read_all, start_cli, stop

pytestmark = [pytest.mark.integration, pytest.mark.fault]
S = STREAMS["transactions"]
REDIS_DB = 3
RATE = 40.0  # requests/s, one event each
#: (name, added delay per round trip in s, blackhole, seconds)
PHASES = (
    ("normal", 0.0, False, 6.0),
    ("+50 ms", 0.05, False, 6.0),
    ("+500 ms", 0.5, False, 6.0),
    ("blackhole", 0.0, True, 8.0),
    ("recovered", 0.0, False, 8.0),
)
DEADLINE_MS = 100.0
WARMUP = 20


class _Answer(msgspec.Struct):
    event_id: str
    degraded: str | None
    feature_statuses: dict[str, str]


@dataclass
class _Result:
    index: int
    phase: int
    latency_ms: float
    status: int
    answer: _Answer | None
    sent_s: float  # when the request really left, s after the first scheduled one
    done_s: float  # when its answer arrived


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def proxy(stack_settings: Settings) -> Iterator[LatencyProxy]:
    target = urlsplit(stack_settings.redis_url or "")
    p = LatencyProxy(target.hostname or "127.0.0.1", target.port or 6379)
    p.start()
    yield p
    p.stop()


def _wait_ready(base: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 120.0
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()[-3000:]
        try:
            if httpx.get(f"{base}/readyz", timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise AssertionError(f"API not ready: {log.read_text()[-3000:]}")


async def _drive(
    base: str,
    token: str,
    warmup: list[bytes],
    bodies: list[bytes],
    proxy: LatencyProxy,
    changed: list[float],
) -> tuple[list[_Result], float]:
    """Warm-up (not counted), then open loop at RATE through the phases; the proxy
    changes at each phase's start, and ``changed`` gets the moment each change
    really took effect (s after the first scheduled request). Returns the results
    and the wall time of the first scheduled request."""
    loop = asyncio.get_running_loop()
    bounds, t = [], 0.0
    for _name, _delay, _hole, seconds in PHASES:
        bounds.append(t)
        t += seconds

    async def phases() -> None:
        for i, (_name, delay, hole, _s) in enumerate(PHASES):
            await asyncio.sleep(max(0.0, start + bounds[i] - loop.time()))
            proxy.set_delay(delay)
            proxy.blackhole(hole)
            changed.append(loop.time() - start)

    results: list[_Result] = []
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    timeout = aiohttp.ClientTimeout(total=30.0)
    async with aiohttp.ClientSession(base, headers=headers, timeout=timeout) as client:
        for body in warmup:  # first model run, Kafka connections, token cache
            async with client.post("/v1/score/transactions", data=body) as r:
                assert r.status == 200, await r.text()
        start = loop.time() + 0.1
        origin = time.time() + (start - loop.time())

        async def one(i: int, body: bytes) -> None:
            at = start + i / RATE
            await asyncio.sleep(max(0.0, at - loop.time()))
            phase = max(k for k, b in enumerate(bounds) if i / RATE >= b)
            sent = loop.time()
            async with client.post("/v1/score/transactions", data=body) as r:
                content = await r.read()
            done = loop.time()
            answer = msgspec.json.decode(content, type=_Answer) if r.status == 200 else None
            results.append(
                _Result(i, phase, (done - at) * 1000, r.status, answer, sent - start, done - start)
            )

        await asyncio.gather(phases(), *(one(i, b) for i, b in enumerate(bodies)))
    return sorted(results, key=lambda r: r.index), origin


def test_slow_then_silent_redis_sends_scoring_to_the_degraded_path(
    stack_settings: Settings, proxy: LatencyProxy, transaction_model_dir: Path, tmp_path: Path
) -> None:
    n = int(RATE * sum(p[3] for p in PHASES))
    scenario = get("small").only("transactions").with_days(8)
    events = [r.event for r in scenario.records(seed=29) if r.topic == S.input_topic]
    warmup, events = events[:WARMUP], events[WARMUP : WARMUP + n]
    assert len(events) == n
    prefix = f"f7-{uuid.uuid4().hex[:6]}."
    create_topics(
        make_admin(stack_settings),
        [TopicSpec(prefix + t, 3, 1) for t in (S.decision_topic, S.scored_log_topic)],
    )
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    proxied = f"redis://127.0.0.1:{proxy.port}/{REDIS_DB}"
    log = tmp_path / "api.log"
    proc = start_cli(
        [
            "api", "--port", str(port), "--topic-prefix", prefix,
            "--model", f"transactions={transaction_model_dir}",
            "--store-deadline-ms", str(DEADLINE_MS),
        ],
        bootstrap=stack_settings.kafka_bootstrap or "",
        redis_url=proxied,
        log=log,
    )  # fmt: skip
    changed: list[float] = []
    try:
        _wait_ready(base, proc, log)
        token = issue_token(
            stack_settings.api_signing_key.get_secret_value(), "f7", ["score"], ttl_s=3600
        )
        results, origin = asyncio.run(
            _drive(
                base,
                token,
                [encode(e) for e in warmup],
                [encode(e) for e in events],
                proxy,
                changed,
            )
        )
        metrics = httpx.get(f"{base}/metrics", timeout=5.0).text
    finally:
        proxy.set_delay(0.0)
        proxy.blackhole(False)
        stop(proc)
    decided = read_all(
        stack_settings.kafka_bootstrap or "", prefix + S.decision_topic, n + WARMUP, 120
    )

    rows = []
    for k, (name, *_rest) in enumerate(PHASES):
        rs = [r for r in results if r.phase == k]
        lat = np.array([r.latency_ms for r in rs])
        degraded = sum(1 for r in rs if r.answer is not None and r.answer.degraded)
        rows.append(
            {
                "phase": name,
                "requests": len(rs),
                "p50_ms": round(float(np.percentile(lat, 50)), 1),
                "p99_ms": round(float(np.percentile(lat, 99)), 1),
                "max_ms": round(float(lat.max()), 1),
                "max_at_s": round((rs[int(lat.argmax())].index - rs[0].index) / RATE, 2),
                "degraded_share": round(degraded / len(rs), 3),
            }
        )
    opened = next(
        float(line.split()[-1])
        for line in metrics.splitlines()
        if line.startswith("streamscore_api_store_circuit_opened_total ")
    )
    ids = [json.loads(m.value())["event_id"] for m in decided]
    answered = {r.answer.event_id for r in results if r.answer is not None}
    lost, dup = len(answered - set(ids)), len(ids) - len(set(ids))
    print(f"\nF7 Redis slow/silent under the API at {RATE:.0f} req/s, deadline {DEADLINE_MS} ms:")
    for row in rows:
        print(f"  {row}")
    print(f"  breaker opened {opened:.0f}x; decisions lost {lost}, duplicated {dup}")
    report = fault_report(
        f"F7 Redis +50 ms, +500 ms, blackhole under the API at {RATE:.0f} req/s",
        [Sent(e.event_id) for e in warmup]  # not timed: before the open loop
        + [Sent(events[r.index].event_id, (origin + r.index / RATE) * 1e3) for r in results],
        outs_from(decided, decision),
        [(origin + changed[1], origin + changed[-1])],  # from +50 ms until the store is back
        unit="requests",
        note=f"breaker opened {opened:.0f}x",
    )
    print(report)

    assert [r.status for r in results if r.status != 200] == [], log.read_text()[-3000:]
    assert len(results) == n
    ends = [*changed[1:], float("inf")]

    def under(name: str, settle_s: float) -> list[_Result]:
        """The requests that ran wholly under the phase's store: sent ``settle_s`` or
        more after the change took effect, answered before the next change (a request
        scheduled in a phase's last moments can leave late on a loaded machine and
        meet the next phase's store)."""
        k = [p[0] for p in PHASES].index(name)
        got = [r for r in results if r.sent_s >= changed[k] + settle_s and r.done_s <= ends[k]]
        assert len(got) >= RATE * (PHASES[k][3] - settle_s - 1.0), (name, len(got))
        return got

    def unexplained(rs: list[_Result]) -> list[_Result]:
        """Degraded answers under a healthy store that the deadline does not explain.
        On a loaded machine a request's feature step can itself outlast the deadline
        (CPU, not the store) and is then rightly degraded; it took the deadline."""
        return [
            r
            for r in rs
            if r.answer is None
            or (r.answer.degraded and (r.done_s - r.sent_s) * 1000 < DEADLINE_MS)
        ]

    assert unexplained(under("normal", 0.0)) == []
    for name in ("+500 ms", "blackhole"):  # after the first second (the breaker's onset)
        answers = [r.answer for r in under(name, 1.0) if r.answer is not None]
        assert all(a.degraded for a in answers), name
        assert all(set(a.feature_statuses.values()) == {"ERROR"} for a in answers), name
    tail = [r for r in results if r.phase == len(PHASES) - 1][-int(RATE) :]  # last second
    assert unexplained(tail) == []
    assert opened >= 1
    assert (lost, dup) == (0, 0)
    assert report.lost == 0 and report.conflicting == 0
    assert proxy.connections > 0  # the API's Redis really went through the proxy
