"""``streamscore bench api``: synchronous scoring over HTTP on the live stack.

One ``streamscore api`` process (uvicorn, one worker) serves a real ONNX model
for transactions, on Kafka and a Redis database of its own. A load generator in
this process (asyncio + aiohttp, keep-alive connections) sends single-event
``POST /v1/score/transactions`` requests of the ``small`` simulated world:

1. **Paced**: ``--rate`` requests/s (200 by default, the issue's figure) for
   ``--duration`` s, open loop: each request has a scheduled send time and its
   latency counts from then, so a stalled server cannot hide its queue
   (no coordinated omission).
2. **Baseline**: the same schedule against ``GET /healthz`` — the floor of the
   HTTP stack on this machine (uvicorn, FastAPI, aiohttp, loopback). The ratio
   is that floor over our p99: what share of the latency is the HTTP stack.
3. **Saturation**: ``--concurrency`` requests in flight for ``--saturate`` s,
   closed loop: the most requests/s one process decides, and the p99 then.

Each scoring request runs the feature computation against Redis (three round
trips), the model and the policy, and waits for Kafka to acknowledge the
decision and its scored-event record (acks=all). Every response must be 200
and name its event; errors are counted and reported, never dropped.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from importlib.metadata import version
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import msgspec
import numpy as np
import redis

from streamscore.libs.config import Settings
from streamscore.libs.contracts.codec import encode
from streamscore.libs.model.synthetic import train_synthetic_model
from streamscore.libs.simulator.scenario import get
from streamscore.libs.topics import STREAMS, TopicSpec
from streamscore.services.api.auth import issue_token
from streamscore.services.clients import endpoints, make_admin
from streamscore.services.scorer import default_policy
from streamscore.services.topics_admin import create_topics

S = STREAMS["transactions"]
REDIS_DB = 12


def parse_args(argv: list[str]) -> dict[str, Any]:
    p = argparse.ArgumentParser(prog="streamscore bench api")
    p.add_argument("--rate", type=float, default=200.0, help="requests/s of the paced phase")
    p.add_argument("--duration", type=float, default=30.0, help="seconds of the paced phase")
    p.add_argument("--concurrency", type=int, default=32, help="in flight when saturating")
    p.add_argument("--saturate", type=float, default=15.0, help="seconds of saturation")
    p.add_argument("--trees", type=int, default=100)
    p.add_argument("--depth", type=int, default=5)
    return vars(p.parse_args(argv))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Decision(msgspec.Struct):
    event_id: str


async def _paced(
    client: aiohttp.ClientSession, method: str, path: str, bodies: list[bytes], rate: float
) -> tuple[np.ndarray, int]:
    """Open loop: latency from each request's scheduled time (ms) and the error count."""
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.05
    lat: list[float] = []
    errors = 0

    async def one(i: int, body: bytes) -> None:
        nonlocal errors
        at = start + i / rate
        await asyncio.sleep(max(0.0, at - loop.time()))
        async with client.request(method, path, data=body or None) as r:
            await r.read()
            if r.status != 200:
                errors += 1
        lat.append((loop.time() - at) * 1000)

    await asyncio.gather(*(one(i, b) for i, b in enumerate(bodies)))
    return np.array(lat), errors


async def _saturate(
    client: aiohttp.ClientSession, bodies: list[bytes], concurrency: int, seconds: float
) -> tuple[float, np.ndarray, int]:
    """Closed loop: requests/s, latencies (ms) and errors with ``concurrency`` in flight."""
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    it = iter(bodies)
    lat: list[float] = []
    errors = 0

    async def worker() -> None:
        nonlocal errors
        for body in it:
            if loop.time() >= end:
                return
            t = loop.time()
            async with client.post("/v1/score/transactions", data=body) as r:
                content = await r.read()
            lat.append((loop.time() - t) * 1000)
            if r.status != 200 or not msgspec.json.decode(content, type=_Decision).event_id:
                errors += 1

    t0 = loop.time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return len(lat) / (loop.time() - t0), np.array(lat), errors


def _wait_ready(base: str, proc: subprocess.Popen[bytes], timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("the API process exited during start-up")
        try:
            if httpx.get(f"{base}/readyz", timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise SystemExit("the API did not become ready")


def _pcts(lat: np.ndarray) -> tuple[float, float, float]:
    p50, p95, p99 = (float(np.percentile(lat, q)) for q in (50, 95, 99))
    return p50, p95, p99


async def _load(
    base: str, token: str, bodies: list[bytes], rate: float, duration: float, conc: int, sat: float
) -> dict[str, Any]:
    n = int(rate * duration)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=max(conc, 64))
    async with aiohttp.ClientSession(
        base, headers=headers, connector=connector, timeout=aiohttp.ClientTimeout(total=30.0)
    ) as client:
        await _paced(client, "POST", "/v1/score/transactions", bodies[:50], 50.0)  # warm-up
        print(f"paced: {n:,} scoring requests at {rate:,.0f}/s", file=sys.stderr)
        score_lat, score_err = await _paced(
            client, "POST", "/v1/score/transactions", bodies[50 : 50 + n], rate
        )
        print(f"baseline: {n:,} GET /healthz at {rate:,.0f}/s", file=sys.stderr)
        health_lat, health_err = await _paced(client, "GET", "/healthz", [b""] * n, rate)
        print(f"saturation: {conc} in flight for {sat:.0f} s", file=sys.stderr)
        sat_rate, sat_lat, sat_err = await _saturate(client, bodies[50 + n :], conc, sat)
    return {
        "score": score_lat,
        "score_errors": score_err,
        "health": health_lat,
        "health_errors": health_err,
        "sat_rate": sat_rate,
        "sat": sat_lat,
        "sat_errors": sat_err,
    }


def run(
    rate: float = 200.0,
    duration: float = 30.0,
    concurrency: int = 32,
    saturate: float = 15.0,
    trees: int = 100,
    depth: int = 5,
) -> dict[str, Any]:
    settings = Settings()
    ep = endpoints(settings)
    n = int(rate * duration)
    days = 1
    events = []
    while len(events) < n + 50 + int(saturate * 1500):  # enough never to run dry
        days *= 2
        scenario = get("small").only("transactions").with_days(days)
        events = [r.event for r in scenario.records(seed=21) if r.topic == S.input_topic]
        if days >= 64:
            break
    bodies = [encode(e) for e in events]
    prefix = f"bench-api-{uuid.uuid4().hex[:8]}."
    topics = [prefix + S.decision_topic, prefix + S.scored_log_topic]
    admin = make_admin(settings)
    create_topics(admin, [TopicSpec(t, 3, 1) for t in topics])
    url = f"{ep.redis_url.rsplit('/', 1)[0]}/{REDIS_DB}"
    r = redis.Redis.from_url(url)
    r.flushdb()
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    token = issue_token(settings.api_signing_key.get_secret_value(), "bench", ["score"])
    env = {**os.environ, "KAFKA_BOOTSTRAP": ep.kafka_bootstrap, "REDIS_URL": url}
    env.pop("STREAMSCORE_METRICS_PORT", None)
    with tempfile.TemporaryDirectory() as tmp, tempfile.TemporaryFile() as log:
        train_synthetic_model(
            Path(tmp),
            name="bench",
            version="bench-api-1",
            thresholds=default_policy("transactions").thresholds,
            trees=trees,
            depth=depth,
        )
        cmd = [
            sys.executable, "-m", "streamscore.services.cli", "api", "--port", str(port),
            "--model", f"transactions={tmp}", "--topic-prefix", prefix,
        ]  # fmt: skip
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            _wait_ready(base, proc)
            res = asyncio.run(_load(base, token, bodies, rate, duration, concurrency, saturate))
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
    admin.delete_topics(topics)
    r.flushdb()
    p50, p95, p99 = _pcts(res["score"])
    h50, _h95, h99 = _pcts(res["health"])
    s50, _s95, s99 = _pcts(res["sat"])
    return {
        "bench": "api",
        "conditions": {
            "route": "POST /v1/score/transactions, one event per request",
            "paced_requests": n,
            "rate_per_s": rate,
            "model": f"xgboost {trees} trees depth {depth}, ONNX",
            "per_request": "features on Redis (3 round trips), model, policy, Kafka acks=all",
            "server": f"uvicorn {version('uvicorn')}, 1 process; load generator in-process",
            "errors": {
                "paced": res["score_errors"],
                "healthz": res["health_errors"],
                "saturation": res["sat_errors"],
            },
            "python": platform.python_version(),
            "cpu_count": os.cpu_count(),
        },
        "rows": [
            {
                "metric": f"score p99 at {rate:,.0f} req/s (open loop)",
                "value": round(p99, 2),
                "unit": "ms",
                "baseline_name": f"GET /healthz p99 at {rate:,.0f} req/s (HTTP stack floor)",
                "baseline": round(h99, 2),
                "ratio": round(h99 / p99, 3),
                "better": "lower",
            },
            {"metric": "score p50", "value": round(p50, 2), "unit": "ms", "better": "lower"},
            {"metric": "score p95", "value": round(p95, 2), "unit": "ms", "better": "lower"},
            {"metric": "healthz p50", "value": round(h50, 2), "unit": "ms", "better": "lower"},
            {
                "metric": f"saturation req/s ({concurrency} in flight)",
                "value": round(res["sat_rate"]),
                "unit": "req/s",
                "better": "higher",
            },
            {"metric": "saturation p50", "value": round(s50, 2), "unit": "ms", "better": "lower"},
            {"metric": "saturation p99", "value": round(s99, 2), "unit": "ms", "better": "lower"},
        ],
    }
