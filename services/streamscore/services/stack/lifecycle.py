"""``up``, ``down`` and ``status`` of the local stack (Kafka KRaft + Redis on loopback).

Endpoints given in the settings (``KAFKA_BOOTSTRAP`` / ``REDIS_URL``) are external:
they are checked, never started. Whatever is not given is started here as a local
process, recorded in the state file, and stopped again by ``down``.
"""

from __future__ import annotations

import shlex
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from streamscore.libs.config import Settings, redact_url
from streamscore.libs.security import kafka_security_config, redis_security_options
from streamscore.services.stack import kafka, process, redis, state
from streamscore.services.stack.errors import StackError
from streamscore.services.stack.layout import StackLayout
from streamscore.services.stack.lock import file_lock
from streamscore.services.stack.ports import HOST, choose_port

Progress = Callable[[str], None]

KAFKA_PORT_ENV = "STREAMSCORE_KAFKA_PORT"
KAFKA_CONTROLLER_PORT_ENV = "STREAMSCORE_KAFKA_CONTROLLER_PORT"
REDIS_PORT_ENV = "STREAMSCORE_REDIS_PORT"
DEFAULT_KAFKA_PORT, DEFAULT_CONTROLLER_PORT, DEFAULT_REDIS_PORT = 9092, 9093, 6379

#: A cold JVM on a small machine needs 5-15 s; 90 s leaves room for a loaded CI runner.
KAFKA_START_TIMEOUT = 90.0
REDIS_START_TIMEOUT = 20.0
#: Controlled shutdown of a one-node KRaft broker takes a few seconds; 20 s means stuck.
KAFKA_STOP_TIMEOUT = 20.0
REDIS_STOP_TIMEOUT = 10.0
#: How long an already running (or external) stack gets to answer before it counts as broken.
RUNNING_CHECK_TIMEOUT = 5.0
EXTERNAL_CHECK_TIMEOUT = 15.0


@dataclass(frozen=True)
class StackInfo:
    """Where the stack listens, and whether this project runs it (``managed``).

    ``managed`` is ``False`` when both endpoints are external (``KAFKA_BOOTSTRAP`` and
    ``REDIS_URL`` set); then the pids and ``logs_dir`` are ``None``.
    """

    kafka_bootstrap: str
    redis_url: str
    managed: bool
    home: Path
    kafka_pid: int | None = None
    redis_pid: int | None = None
    logs_dir: Path | None = None


def _layout(settings: Settings) -> StackLayout:
    return StackLayout.for_home(settings.home)


def _external(settings: Settings) -> StackInfo | None:
    if settings.kafka_bootstrap and settings.redis_url:
        return StackInfo(
            kafka_bootstrap=settings.kafka_bootstrap,
            redis_url=settings.redis_url,
            managed=False,
            home=settings.home,
        )
    return None


def _info(layout: StackLayout, st: state.StackState) -> StackInfo:
    if st.kafka_bootstrap is None or st.redis_url is None:
        msg = f"state file {layout.state_file} lacks an endpoint"
        raise StackError(msg)
    return StackInfo(
        kafka_bootstrap=st.kafka_bootstrap,
        redis_url=st.redis_url,
        managed=bool(st.processes()),
        home=layout.home,
        kafka_pid=None if st.kafka is None else st.kafka.pid,
        redis_pid=None if st.redis is None else st.redis.pid,
        logs_dir=Path(st.logs_dir),
    )


def _consistent(settings: Settings, st: state.StackState) -> bool:
    """The recorded stack is the one these settings ask for, and its processes live.

    A side given in the settings must be external in the record with the same
    endpoint; a side not given must be a managed process that still runs.
    """
    for given, endpoint, record in (
        (settings.kafka_bootstrap, st.kafka_bootstrap, st.kafka),
        (settings.redis_url, st.redis_url, st.redis),
    ):
        if given:
            if record is not None or endpoint != given:
                return False
        elif record is None or not process.running(record) or endpoint is None:
            return False
    return True


def _answers(st: state.StackState) -> bool:
    assert st.kafka_bootstrap is not None and st.redis_url is not None
    try:
        kafka.wait_kafka_ready(st.kafka_bootstrap, RUNNING_CHECK_TIMEOUT)
        redis.wait_redis_ready(st.redis_url, RUNNING_CHECK_TIMEOUT)
    except StackError:
        return False
    return True


def status(settings: Settings | None = None) -> StackInfo | None:
    """The running stack from the state file and live pids (no network call), or ``None``.

    With both endpoints external, those endpoints (``managed=False``).
    """
    settings = settings or Settings()
    external = _external(settings)
    if external is not None:
        return external
    layout = _layout(settings)
    st = state.load(layout.state_file)
    if st is None or not all(process.running(p) for p in st.processes()):
        return None
    return _info(layout, st)


def up(settings: Settings | None = None, *, progress: Progress = print) -> StackInfo:
    """Start what is not running yet and return where everything listens.

    1. Both endpoints external: start nothing, only prove both answer.
    2. Under a file lock on ``<home>/stack/.lock``, so two concurrent ``up`` calls
       start one stack (the second waits, then finds it running).
    3. A recorded stack whose processes live and answer is returned as is: calling
       ``up`` twice is safe and fast.
    4. A stale record (dead pid, reused pid, broker not answering, other settings)
       is cleaned first: survivors are stopped, the record removed.
    """
    settings = settings or Settings()
    external = _external(settings)
    if external is not None:
        _check_external(settings, progress)
        return external
    layout = _layout(settings)
    layout.make_dirs()
    with file_lock(layout.lock_file):
        st = state.load(layout.state_file)
        if st is not None:
            if _consistent(settings, st) and _answers(st):
                info = _info(layout, st)
                progress(
                    f"stack: already running (kafka {info.kafka_bootstrap} pid {info.kafka_pid}, "
                    f"redis {redact_url(info.redis_url)} pid {info.redis_pid})"
                )
                return info
            progress("stack: stale state found, cleaning up")
            _stop(st, progress)
            state.remove(layout.state_file)
        elif layout.state_file.exists():
            progress(f"stack: unreadable state file {layout.state_file}, replacing it")
            state.remove(layout.state_file)
        return _start(settings, layout, progress)


def _check_external(settings: Settings, progress: Progress) -> None:
    if settings.kafka_bootstrap:
        waited = kafka.wait_kafka_ready(
            settings.kafka_bootstrap,
            EXTERNAL_CHECK_TIMEOUT,
            security=kafka_security_config(settings),
        )
        progress(f"kafka: external cluster at {settings.kafka_bootstrap} answers ({waited:.1f} s)")
    if settings.redis_url:
        waited = redis.wait_redis_ready(
            settings.redis_url,
            EXTERNAL_CHECK_TIMEOUT,
            options=redis_security_options(settings, settings.redis_url),
        )
        progress(f"redis: external server answers ({waited:.1f} s)")


def _start(settings: Settings, layout: StackLayout, progress: Progress) -> StackInfo:
    """Start the missing processes. The order, and why:

    1. Ports first, then the ``redis-server`` binary: the cheapest checks fail
       before anything is downloaded or started.
    2. External endpoints are checked next, for the same reason.
    3. Jars (may run ``mvn``) before any process, so a failed download leaves
       nothing running.
    4. Kafka config, and storage formatted only once per data folder (its
       ``meta.properties`` keeps the cluster id, topics and offsets across ``up``).
    5. Kafka is spawned first: the JVM needs seconds, Redis milliseconds, so Redis
       starts and becomes ready while Kafka boots.
    6. The state file is written right after the spawns, before any readiness wait:
       if this process dies during the wait, ``down`` still finds and stops them.
    7. Wait for Redis, then Kafka (a real metadata request). Any failure, Ctrl-C
       included, stops what this call started and removes the record.
    """
    started = time.monotonic()
    manage_kafka, manage_redis = not settings.kafka_bootstrap, not settings.redis_url
    taken: list[int] = []
    kafka_port = controller_port = redis_port = 0
    if manage_kafka:
        kafka_port = choose_port(
            DEFAULT_KAFKA_PORT, what="kafka", env_var=KAFKA_PORT_ENV, progress=progress
        )
        taken.append(kafka_port)
        controller_port = choose_port(
            DEFAULT_CONTROLLER_PORT,
            what="kafka controller",
            env_var=KAFKA_CONTROLLER_PORT_ENV,
            taken=taken,
            progress=progress,
        )
        taken.append(controller_port)
    if manage_redis:
        redis_port = choose_port(
            DEFAULT_REDIS_PORT, what="redis", env_var=REDIS_PORT_ENV, taken=taken, progress=progress
        )
        redis.redis_server()
    _check_external(settings, progress)

    libs = server = log4j = None
    if manage_kafka:
        libs = kafka.ensure_jars(layout.jar_cache, progress)
        server, log4j = kafka.write_config(layout, port=kafka_port, controller_port=controller_port)
        kafka.format_storage(layout, libs, server, log4j, progress)

    bootstrap = settings.kafka_bootstrap or f"{HOST}:{kafka_port}"
    redis_url = settings.redis_url or redis.url(redis_port)
    st = state.StackState(
        home=str(layout.home),
        kafka_bootstrap=bootstrap,
        redis_url=redis_url,
        logs_dir=str(layout.logs_dir),
        kafka_version=kafka.KAFKA_VERSION,
    )
    try:
        if libs is not None and server is not None and log4j is not None:
            st = replace(st, kafka=kafka.start(layout, libs, server, log4j))
        if manage_redis:
            conf = redis.write_config(layout, port=redis_port)
            st = replace(st, redis=redis.start(layout, conf))
        st = replace(
            st,
            ports={
                k: v
                for k, v in (
                    ("kafka", kafka_port),
                    ("kafka_controller", controller_port),
                    ("redis", redis_port),
                )
                if v
            },
        )
        state.save(layout.state_file, st)
        if st.redis is not None:
            rec = st.redis
            waited = redis.wait_redis_ready(
                redis_url, REDIS_START_TIMEOUT, alive=lambda: process.running(rec), logs=rec.logs
            )
            progress(f"redis: ready on {redis_url} in {waited:.1f} s (pid {rec.pid})")
        if st.kafka is not None:
            krec = st.kafka
            waited = kafka.wait_kafka_ready(
                bootstrap, KAFKA_START_TIMEOUT, alive=lambda: process.running(krec), logs=krec.logs
            )
            progress(
                f"kafka: {kafka.KAFKA_VERSION} (KRaft) ready on {bootstrap} in {waited:.1f} s "
                f"(pid {krec.pid})"
            )
    except BaseException:
        _stop(st, progress)
        state.remove(layout.state_file)
        raise
    progress(f"stack: up in {time.monotonic() - started:.1f} s (logs in {layout.logs_dir})")
    return _info(layout, st)


def _stop(st: state.StackState, progress: Progress) -> bool:
    """Stop the recorded processes; return whether any was running. The order, and why:

    1. SIGTERM to Kafka first, then Redis, without waiting in between: services read
       Kafka and write Redis, so input stops before the feature store does, and
       Kafka's slow controlled shutdown overlaps Redis' quick AOF flush.
    2. Wait for each against its own deadline (Kafka 20 s, Redis 10 s); a process
       still there is SIGKILLed and waited for, so its ports are free on return.
    3. The caller removes the state file only after this returns: a ``down`` that
       raised can be run again.
    """
    started = time.monotonic()
    signalled = [p for p in st.processes() if process.terminate(p)]
    for rec in signalled:
        limit = KAFKA_STOP_TIMEOUT if rec.name == "kafka" else REDIS_STOP_TIMEOUT
        killed = process.wait_stopped(rec, started + limit)
        how = f"killed after {limit:.0f} s (SIGTERM ignored)" if killed else "stopped"
        progress(f"{rec.name}: {how} (pid {rec.pid}) in {time.monotonic() - started:.1f} s")
    return bool(signalled)


def down(
    settings: Settings | None = None, *, progress: Progress = print, purge: bool = False
) -> bool:
    """Stop what ``up`` started and remove the state file; return whether anything ran.

    Safe when nothing runs. Data (topics, Redis AOF) and logs are kept for the next
    ``up`` unless ``purge``; the Kafka jar cache is always kept.
    """
    settings = settings or Settings()
    layout = _layout(settings)
    if not layout.stack_dir.exists():
        return False  # never started in this home: nothing to stop, nothing to create
    # Under the lock: a `down` during an `up` waits for it, then stops what it started.
    with file_lock(layout.lock_file):
        st = state.load(layout.state_file)
        stopped = _stop(st, progress) if st is not None else False
        state.remove(layout.state_file)
        if purge:
            for folder in (
                layout.kafka_data,
                layout.redis_data,
                layout.logs_dir,
                layout.config_dir,
            ):
                shutil.rmtree(folder, ignore_errors=True)
            progress(f"stack: data and logs removed under {layout.stack_dir}")
        return stopped


def env_lines(info: StackInfo) -> list[str]:
    """Shell lines that point other tools at the stack (``eval "$(streamscore env)"``).

    >>> info = StackInfo("127.0.0.1:9092", "redis://127.0.0.1:6379/0", True, Path("/h"))
    >>> env_lines(info)
    ['export KAFKA_BOOTSTRAP=127.0.0.1:9092', 'export REDIS_URL=redis://127.0.0.1:6379/0']
    >>> env_lines(StackInfo("k:9093", "redis://u:pw@r:6379/0", False, Path("/h")))[1]
    '# REDIS_URL=redis://u:***@r:6379/0 (password not printed)'
    """
    redis_line = f"export REDIS_URL={shlex.quote(info.redis_url)}"
    if redact_url(info.redis_url) != info.redis_url:  # never print a password
        redis_line = f"# REDIS_URL={redact_url(info.redis_url)} (password not printed)"
    return [f"export KAFKA_BOOTSTRAP={shlex.quote(info.kafka_bootstrap)}", redis_line]
