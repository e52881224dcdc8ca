"""The learning loop end to end, by itself, on real Kafka, Redis and MLflow (issue #7).

The world (:mod:`tests.learning_loop_world`): 32 days of payments, chargebacks
within 2.5 days, card testing (a new fraud pattern) from day 8.

1. **Cold start**: the first model is trained on days 0-7 of the simulator's
   files (offline feature path; train 5 days, gap 1, test 2), registered behind
   the parity gate and promoted (champion alias + model store).
2. **Serve**: ``streamscore pipeline`` (features + decisions + scored-event
   log), ``streamscore joiner`` (maturity horizon 3 days of stream time) and
   ``streamscore retrainer --progress --promote auto`` run as processes on a
   private topic prefix and Redis database; days 0-17 are published as fast as
   the broker takes them.
3. **Retrain on drift**: ``streamscore monitor`` watches the scored-event log
   and confirms the card testing (two model inputs within a day: a
   ``retrain_trigger``); it is the retrainer's only cause enabled. The
   trigger waits until five days of labels after the confirmation have
   matured (``--alert-matured-hours 120``): drift is confirmed within hours,
   its labels take days, and a training before them learns the old world
   only. The monitor watches the champion's outputs only, so the canary and
   the promotion raise no second trigger. The retrainer trains on the matured
   examples (split ending at the maturity frontier), passes the gate,
   registers and sets the challenger in shadow with the plan (1,500 shadow
   decisions, 1,500 canary decisions at a share of 0.5, promotion ``auto``,
   an outcome-rate bound widened to 0.3: the new model blocks the card
   tests, some 15 % of payments).
4. **Shadow → canary → champion** happen in the pipeline's scorer as days 18+
   are published, a day at a time; the retrainer mirrors them on the registry's
   aliases.
5. **Before/after**: both models on the offline rows of the days after the
   promotion (held-out slice, same feature definitions), and the live
   decisions per model version: the new champion catches more card tests; the
   retrainer's late judge, once v2's canary cohort has matured, keeps it.
6. **A deliberately worse challenger** (scores every row ~1: blocks all) in
   canary with an ``auto`` plan is rolled back by the scorer's judge: alert on
   ``alerts.drift``, challenger cleared, champion unchanged.

The timeline (wall seconds since the feed started; "fed up to": the newest
event time published by then, the pipeline trails it) and the figures are
printed (``-s``).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import msgspec
import pytest
import redis

from streamscore.libs.config import Settings
from streamscore.libs.contracts.alerts import DriftAlert
from streamscore.libs.contracts.codec import decode
from streamscore.libs.rollout.progression import Plan
from streamscore.libs.topics import DRIFT_ALERT_TOPIC, STREAMS, TopicSpec, catalogue
from streamscore.libs.training.params import XGBParams
from streamscore.services.clients import make_admin, make_producer
from streamscore.services.model_registry import ModelRegistry, promote_champion
from streamscore.services.model_store import ModelStore
from streamscore.services.sim_files import simulate_to_files
from streamscore.services.sim_producer import publish
from streamscore.services.topics_admin import create_topics
from streamscore.services.train_config import TrainConfig
from streamscore.services.trainer import train
from tests.learning_loop_world import (
    DAYS,
    DRIFT_DAY,
    SEED,
    STREAM,
    WORLD,
    Days,
    Timeline,
    day_label,
    day_of,
    held_out,
    live_recall,
    read_decisions,
)
from tests.model_folders import blocking
from tests.processor_runs import read_all, redis_db_url, start_cli, stop

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.timeout(600),
    pytest.mark.filterwarnings("ignore:.*noload.*:DeprecationWarning"),  # MLflow 3.17 on SA 2.1
]
REDIS_DB = 12  # this test's own database: the pipeline's model store uses the default namespace
PHASE_A = range(18)  # days published before the retraining
SHADOW_EVENTS = CANARY_EVENTS = 1500
#: A drift's retrain_trigger waits until five days of labels after its start have matured.
ALERT_MATURED_H = 120


@dataclass
class Loop:
    settings: Settings
    env: dict[str, str]
    prefix: str
    store: ModelStore
    registry: ModelRegistry
    sim: Path
    days: Days
    timeline: Timeline
    logs: Path


def _until(cond: Callable[[], object], what: str, timeout_s: float, logs: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.5)
    tails = "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted(logs.glob("*.log")))
    raise AssertionError(f"timed out waiting for {what}\n{tails}")


@pytest.fixture(scope="module")
def loop(stack_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loop]:
    tmp = tmp_path_factory.mktemp("loop")
    assert stack_settings.redis_url and stack_settings.kafka_bootstrap
    redis_url = redis_db_url(stack_settings.redis_url, REDIS_DB)
    redis.Redis.from_url(redis_url).flushdb()  # the pipeline's state of a previous run
    settings = Settings(
        home=tmp / "home", profile="test", kafka_bootstrap=stack_settings.kafka_bootstrap,
        redis_url=redis_url, mlflow_tracking_uri=f"sqlite:///{tmp / 'mlflow.db'}",
        models_root=tmp / "models",
    )  # fmt: skip
    env = {
        "STREAMSCORE_HOME": str(settings.home),
        "STREAMSCORE_PROFILE": "test",
        "STREAMSCORE_MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri or "",
        "STREAMSCORE_MODELS_ROOT": str(settings.models_root),
    }
    prefix = f"loop-{uuid.uuid4().hex[:8]}."
    specs = [
        TopicSpec(prefix + t.name, 1, 1, t.config, t.purpose)
        for t in catalogue(1, 1)
        if t.name.endswith(STREAM) or "chargebacks" in t.name or "examples" in t.name
        or t.name.startswith("alerts.")
    ]  # fmt: skip
    create_topics(make_admin(settings), specs)
    sim = tmp / "sim"
    simulate_to_files(WORLD, seed=SEED, out=sim, progress=lambda _m: None)
    store = ModelStore(redis.Redis.from_url(redis_url))
    logs = tmp / "logs"
    logs.mkdir()
    yield Loop(
        settings, env, prefix, store, ModelRegistry.open(settings), sim,
        Days.of(WORLD.records(SEED)), Timeline(), logs,
    )  # fmt: skip


def _cold_start(loop: Loop) -> Path:
    """Step 1: the first champion, from the simulator's files of days 0-7."""
    cfg = TrainConfig(
        stream=STREAM, sim=loop.sim, version="tx-loop-1", track=True,
        params=XGBParams(n_estimators=40, n_jobs=1), train_start=WORLD.start.date(),
        train_days=5, delay_days=1, test_days=2,
    )  # fmt: skip
    result = train(cfg, loop.settings, progress=lambda _m: None)
    v = loop.registry.register(
        result.model_dir, stream=STREAM, by="cold-start", reason="days 0-4 of the simulator",
        run_id=result.run_id,
    )  # fmt: skip
    promote_champion(
        loop.registry, loop.store, STREAM, v.version, by="cold-start", reason="first model"
    )
    return result.model_dir


def _publish(loop: Loop, day: int) -> None:
    records = loop.days.records[day]
    publish(
        records, make_producer(loop.settings, client_id="loop-feed"),
        topic_prefix=loop.prefix, progress=lambda _m: None,
    )  # fmt: skip
    loop.timeline.published(max(r.event.event_time for r in records))


def _challenger_steps(loop: Loop) -> list[tuple[float, str]]:
    return [
        (e.at.timestamp(), f"{e.action} {e.challenger.ref.version} "
         f"({e.challenger.mode}) by {e.by}: {e.reason[:90]}")
        for e in reversed(loop.store.challenger_log(STREAM))
    ]  # fmt: skip


def test_the_loop_retrains_promotes_by_itself_and_rolls_back_a_worse_model(loop: Loop) -> None:
    s, tl = loop.settings, loop.timeline
    bootstrap, redis_url = s.kafka_bootstrap or "", s.redis_url or ""
    v1_dir = _cold_start(loop)
    v1 = loop.store.active(STREAM)
    assert v1 is not None and v1.version == "tx-loop-1"
    tl.step("cold start: tx-loop-1 trained on days 0-4, registered, champion")
    examples = s.home / "examples"
    procs = {
        "pipeline": ["pipeline", "--stream", STREAM, "--topic-prefix", loop.prefix],
        "joiner": ["joiner", "--stream", STREAM, "--topic-prefix", loop.prefix, "--out",
                   str(examples), "--horizon", "3d", "--grace", "1d", "--lateness", "1h",
                   "--commit-interval", "0.5"],
        "monitor": ["monitor", "--stream", STREAM, "--topic-prefix", loop.prefix],
        "retrainer": ["retrainer", "--stream", STREAM, "--topic-prefix", loop.prefix,
                      "--examples", str(examples), "--schedule-hours", "0",
                      "--min-new-examples", "0", "--alert-matured-hours", str(ALERT_MATURED_H),
                      "--min-interval-hours", "10000", "--horizon", "3d", "--late-bucket", "6h",
                      "--train-days", "5", "--delay-days", "1", "--test-days", "1",
                      "--n-estimators", "40", "--jobs", "1", "--progress",
                      "--shadow-events", str(SHADOW_EVENTS), "--canary-events",
                      str(CANARY_EVENTS), "--canary-share", "0.5", "--promote", "auto",
                      "--max-rate-shift", "0.3"],
    }  # fmt: skip
    running = {
        name: start_cli(args, bootstrap=bootstrap, redis_url=redis_url,
                        log=loop.logs / f"{name}.log", env=loop.env)
        for name, args in procs.items()
    }  # fmt: skip
    try:
        # 2-3. Days 0-17 as fast as they go; the monitor's drift trigger fires on the way.
        tl.started = time.time()
        for day in PHASE_A:
            _publish(loop, day)
        tl.step("days 0-17 published")
        _until(lambda: loop.store.challenger(STREAM) is not None, "a challenger", 240, loop.logs)
        challenger = loop.store.challenger(STREAM)
        assert challenger is not None and challenger.mode == "shadow"
        assert challenger.plan is not None and challenger.plan.promote == "auto"
        v2 = challenger.ref.version
        v2_reg = loop.registry.by_alias(STREAM, "challenger")
        assert v2_reg is not None and v2_reg.model_version == v2 and v2_reg.gate["flips"] == 0.0
        # Retrained because the monitor confirmed the drift (the only trigger enabled).
        why = next(e for e in loop.registry.audit(STREAM) if e.alias == "challenger").reason
        assert why.startswith("retrainer: monitor "), why
        trigger_ids = set(why.removeprefix("retrainer: monitor ").split(", "))

        # 4. Days 18+ a day at a time until the promotion, then two more days.
        day, promoted_day = PHASE_A.stop, None
        while day < DAYS - 4 and (promoted_day is None or day < promoted_day + 3):
            _publish(loop, day)
            day += 1
            time.sleep(2.0)  # the pipeline catches up a little
            active = loop.store.active(STREAM)
            if promoted_day is None and active is not None and active.version == v2:
                promoted_day = day
        _until(
            lambda: (a := loop.store.active(STREAM)) is not None and a.version == v2,
            "the challenger's promotion", 60, loop.logs,
        )  # fmt: skip
        promoted_day = promoted_day or day
        log = loop.store.challenger_log(STREAM)
        moves = [(e.action, e.challenger.mode, e.by) for e in reversed(log)]
        assert moves[-4:] == [
            ("set", "shadow", "retrainer"),
            ("advanced", "canary", "rollout-progression"),
            ("cleared", "canary", "rollout-progression"),
            ("promoted", "canary", "rollout-progression"),
        ], moves
        _until(
            lambda: (c := loop.registry.by_alias(STREAM, "champion")) is not None
            and c.model_version == v2,
            "the registry's champion alias to follow", 30, loop.logs,
        )  # fmt: skip
        assert loop.registry.by_alias(STREAM, "canary") is None
        by = {(e.alias, e.by) for e in loop.registry.audit(STREAM)}
        assert ("canary", "rollout-progression") in by and ("champion", "rollout-progression") in by

        # 6. A deliberately worse challenger, canary with an auto plan: rolled back.
        bad = blocking(s.home / "bad", "tx-loop-blocks-all")
        loop.store.set_challenger(
            STREAM, bad, mode="canary", share=0.5, by="test", reason="deliberately worse",
            plan=Plan(canary_events=CANARY_EVENTS, promote="auto"),
        )  # fmt: skip
        tl.step("tx-loop-blocks-all set as canary (share 0.5, plan auto)")
        while day < DAYS and loop.store.challenger(STREAM) is not None:
            _publish(loop, day)
            day += 1
            time.sleep(2.0)
        _until(lambda: loop.store.challenger(STREAM) is None, "the rollback", 60, loop.logs)
        cleared = loop.store.challenger_log(STREAM)[0]
        assert (cleared.action, cleared.by) == ("cleared", "canary-judge")
        assert cleared.challenger.ref.version == "tx-loop-blocks-all"
        active = loop.store.active(STREAM)
        assert active is not None and active.version == v2
        alerts = [
            decode(DriftAlert, m.value(), max_bytes=1 << 20)
            for m in read_all(bootstrap, loop.prefix + DRIFT_ALERT_TOPIC, 10_000, timeout_s=10)
        ]
        rollback = [a for a in alerts if a.kind == "rollback"]
        assert rollback and rollback[0].model_version == "tx-loop-blocks-all"
        # The trigger was the card testing: confirmed after it began, on the old champion.
        triggers = [a for a in alerts if a.alert_id in trigger_ids]
        assert triggers and all(a.kind == "retrain_trigger" for a in triggers), triggers
        assert all(day_of(a.first_evidence_at) >= DRIFT_DAY - 1 for a in triggers), triggers
        assert {a.model_version for a in triggers} == {v1.version}

        # The retrainer's late judge on v2's matured canary cohort: kept (it is better).
        key = f"{loop.prefix}streamscore:retrainer:{STREAM}:state"
        client = redis.Redis.from_url(redis_url)

        def late() -> dict[str, object]:
            raw = client.get(key)
            state = msgspec.json.decode(raw if isinstance(raw, bytes) else b"{}")
            return state.get("late", {})  # type: ignore[no-any-return]

        _until(lambda: late().get("judged"), "the late judge's verdict", 60, loop.logs)
        assert late()["judged"] == [f"{v1.version}->{v2}"]
        verdict = str(late()["last"])
        assert verdict.startswith("late judge kept"), verdict
        tl.step(verdict[:110])
        assert (a := loop.store.active(STREAM)) is not None and a.version == v2

        # 5. Before/after on the new pattern.
        published = loop.days.transactions(range(day))
        decisions = read_decisions(
            bootstrap, loop.prefix + STREAMS[STREAM].decision_topic, published, 120
        )
    finally:
        for p in running.values():
            stop(p)
    for at, what in _challenger_steps(loop):
        tl.step(what, at)
    for a in alerts:  # what the monitor saw and when (its trigger started the retraining)
        if a.kind != "rollback":
            what = f"{a.signal}" + (f" {a.feature}" if a.feature else "")
            tl.step(f"monitor {a.kind} ({what}, confirmed {day_label(a.confirmed_at)})",
                    a.raised_at.timestamp())  # fmt: skip
    for e in loop.registry.audit(STREAM):  # the registry following (retrainer's alias sync)
        target = f"v{e.version} {e.model_version}" if e.version else "cleared"
        tl.step(f"registry alias {e.alias} -> {target} by {e.by}", e.at.timestamp())
    raw = redis.Redis.from_url(redis_url).get(f"{loop.prefix}streamscore:retrainer:{STREAM}:state")
    last = msgspec.json.decode(raw if isinstance(raw, bytes) else b"{}").get("last", {})
    v2_dir = Path(loop.store.active(STREAM).path)  # type: ignore[union-attr]
    offline = held_out(loop.sim, promoted_day, {"v1 (old champion)": v1_dir, "v2 (new)": v2_dir})
    live = live_recall(decisions, loop.days)
    print(f"\nretraining: {last.get('detail')} in {last.get('seconds')} s")
    print(f"timeline (decisions read {len(decisions):,} of {published:,} published):")
    print(tl.render())
    print(f"held-out slice, days {promoted_day}-{DAYS - 1} (offline features):")
    for name, m in offline.items():
        print(f"  {name:18s} " + ", ".join(f"{k} {v:.3f}" for k, v in m.items()))
    print("live decisions per model version (all days):")
    for version, m in live.items():
        print(f"  {version:34s} " + ", ".join(f"{k} {v:.3f}" for k, v in m.items()))
    assert len(decisions) == published  # none lost through promotion and rollback
    old, new = offline["v1 (old champion)"], offline["v2 (new)"]
    assert new["card_tests"] > 0
    assert new["card_test_recall"] > old["card_test_recall"]
    assert new["ap"] > old["ap"]
    assert (
        live[v2]["card_tests"] > 0
        and live[v2]["card_test_recall"] > live[v1.version]["card_test_recall"]
    )
