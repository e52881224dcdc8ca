"""The local Apache Kafka broker (KRaft, one node): jars, config, storage, start, readiness.

The broker comes from Maven Central through the package's own ``pom.xml`` and runs
as a plain ``java`` process listening on loopback only.
"""

from __future__ import annotations

import base64
import logging
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from streamscore.services.stack import process
from streamscore.services.stack.errors import MissingProgramError, StackError
from streamscore.services.stack.layout import StackLayout
from streamscore.services.stack.lock import file_lock
from streamscore.services.stack.ports import HOST
from streamscore.services.stack.state import ProcessRecord

_PACKAGE = "streamscore.services.stack"
KAFKA_VERSION = "3.9.1"
#: Main class on the java command line: what identifies our broker in /proc/<pid>/cmdline.
MARKER = "kafka.Kafka"
#: Written into the jar folder after a complete copy; its presence means "cached".
JARS_MARKER = ".complete"
JVM_HEAP = ("-Xms256m", "-Xmx768m")

#: librdkafka logs refused connections while the broker boots; keep them out of stderr.
_client_log = logging.getLogger("streamscore.stack.kafka_client")
_client_log.addHandler(logging.NullHandler())
_client_log.propagate = False


def jars_dir(cache_root: Path) -> Path:
    """Folder of the broker's runtime class path inside the jar cache."""
    return cache_root / f"kafka-{KAFKA_VERSION}" / "libs"


def _size_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.glob("*.jar")) / 1e6


def _require(program: str, hint: str) -> str:
    found = shutil.which(program)
    if found is None:
        msg = f"`{program}` is not installed or not on PATH: {hint}"
        raise MissingProgramError(msg)
    return found


def ensure_jars(cache_root: Path, progress: Callable[[str], None]) -> Path:
    """The broker's jar folder, copied from Maven Central by ``mvn`` unless already cached.

    1. A lock on the cache: two homes sharing one cache never run ``mvn`` into the
       same folder at once; the second waits and then finds the jars cached.
    2. The marker file is written only after a complete copy, so a folder left by an
       interrupted download is never mistaken for a cache: it is deleted and redone.
    3. ``mvn`` copies into a temporary folder that is renamed into place, so the jar
       folder is never half-written.
    """
    libs = jars_dir(cache_root)
    base = libs.parent
    base.mkdir(parents=True, exist_ok=True)
    with file_lock(base / ".lock"):
        if (libs / JARS_MARKER).is_file():
            progress(f"kafka: jars cached ({_size_mb(libs):.0f} MB in {libs})")
            return libs
        mvn = _require("mvn", "install Maven (`apt-get install -y maven`) or run the set-up script")
        _require("java", "install a JDK 17 (`apt-get install -y openjdk-17-jre-headless`)")
        build = base / "build"
        shutil.rmtree(build, ignore_errors=True)
        build.mkdir()
        pom = build / "pom.xml"
        pom.write_bytes(resources.files(_PACKAGE).joinpath("pom.xml").read_bytes())
        tmp = base / "libs.partial"
        shutil.rmtree(tmp, ignore_errors=True)
        progress(f"kafka: fetching Kafka {KAFKA_VERSION} jars with Maven (first run only)...")
        started = time.monotonic()
        result = subprocess.run(
            [
                mvn, "-q", "-B", "-f", str(pom),
                "dependency:copy-dependencies",
                f"-DoutputDirectory={tmp}",
                "-DincludeScope=runtime",
            ],
            cwd=build,
            capture_output=True,
            text=True,
            check=False,
        )  # fmt: skip
        if result.returncode != 0 or not any(tmp.glob("kafka_2.13-*.jar")):
            out = "\n".join((result.stdout + result.stderr).strip().splitlines()[-40:])
            msg = f"mvn could not fetch the Kafka jars (exit {result.returncode}):\n{out}"
            raise StackError(msg)
        shutil.rmtree(libs, ignore_errors=True)
        tmp.rename(libs)
        (libs / JARS_MARKER).write_text(f"kafka {KAFKA_VERSION}\n", encoding="utf-8")
        shutil.rmtree(build, ignore_errors=True)
        progress(
            f"kafka: jars fetched ({_size_mb(libs):.0f} MB) in {time.monotonic() - started:.1f} s"
        )
        return libs


def new_cluster_id() -> str:
    """A KRaft cluster id: a random UUID as 22 characters of URL-safe base64.

    Like Kafka's own ``Uuid.randomUuid``, an id starting with ``-`` is drawn
    again: the storage tool's argument parser would take it for an option.

    >>> ids = [new_cluster_id() for _ in range(2000)]
    >>> {len(i) for i in ids}, any(i.startswith("-") for i in ids)
    ({22}, False)
    """
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode("ascii").rstrip("=")
        if not cid.startswith("-"):
            return cid


def server_properties(*, port: int, controller_port: int, data_dir: Path) -> str:
    """``server.properties`` of a one-node KRaft broker+controller on loopback."""
    lines = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@{HOST}:{controller_port}",
        "listeners": f"PLAINTEXT://{HOST}:{port},CONTROLLER://{HOST}:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://{HOST}:{port}",
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "inter.broker.listener.name": "PLAINTEXT",
        "log.dirs": str(data_dir),
        "offsets.topic.replication.factor": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        "auto.create.topics.enable": "false",
        "num.partitions": "1",
    }
    return "".join(f"{k}={v}\n" for k, v in lines.items())


def write_config(layout: StackLayout, *, port: int, controller_port: int) -> tuple[Path, Path]:
    """Write ``server.properties`` and ``log4j.properties``; return their paths."""
    layout.config_dir.mkdir(parents=True, exist_ok=True)
    server = layout.config_dir / "kafka-server.properties"
    server.write_text(
        server_properties(port=port, controller_port=controller_port, data_dir=layout.kafka_data),
        encoding="utf-8",
    )
    log4j = layout.config_dir / "kafka-log4j.properties"
    log4j.write_bytes(resources.files(_PACKAGE).joinpath("log4j.properties").read_bytes())
    return server, log4j


def _java(libs: Path, log4j: Path, logs_dir: Path) -> list[str]:
    java = _require("java", "install a JDK 17 (`apt-get install -y openjdk-17-jre-headless`)")
    return [
        java,
        *JVM_HEAP,
        "-Djava.awt.headless=true",
        f"-Dlog4j.configuration=file:{log4j}",
        f"-Dkafka.logs.dir={logs_dir}",
        "-cp",
        f"{libs}/*",
    ]


def format_storage(
    layout: StackLayout, libs: Path, server: Path, log4j: Path, progress: Callable[[str], None]
) -> None:
    """Format the KRaft log folder once; a folder with ``meta.properties`` keeps its data."""
    if (layout.kafka_data / "meta.properties").is_file():
        return
    started = time.monotonic()
    cmd = [
        *_java(libs, log4j, layout.logs_dir),
        "kafka.tools.StorageTool", "format", f"--cluster-id={new_cluster_id()}", "-c", str(server),
    ]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        msg = f"kafka storage format failed:\n{(result.stdout + result.stderr).strip()}"
        raise StackError(msg)
    progress(f"kafka: storage formatted in {time.monotonic() - started:.1f} s")


def start(layout: StackLayout, libs: Path, server: Path, log4j: Path) -> ProcessRecord:
    """Start the broker detached; its stdout/stderr and log4j files go to the logs folder."""
    return process.spawn(
        "kafka",
        [*_java(libs, log4j, layout.logs_dir), MARKER, str(server)],
        marker=MARKER,
        cwd=layout.stack_dir,
        stdout=layout.logs_dir / "kafka.out",
        stderr=layout.logs_dir / "kafka.err",
        extra_logs=[layout.logs_dir / "kafka-server.log"],
    )


def _host_port(bootstrap: str) -> tuple[str, int]:
    first = bootstrap.split(",", maxsplit=1)[0].strip()
    first = first.split("://")[-1]
    host, _, port = first.rpartition(":")
    return host.strip("[]") or HOST, int(port)


def _tcp_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_kafka_ready(
    bootstrap: str,
    timeout: float = 60.0,
    *,
    alive: Callable[[], bool] | None = None,
    logs: Sequence[Path | str] = (),
    security: Mapping[str, Any] | None = None,
) -> float:
    """Wait until ``bootstrap`` answers a metadata request with a broker; return seconds taken.

    ``security``: librdkafka security keys of a secured cluster (SASL, TLS).

    1. Poll the TCP port first (cheap, silent) so the Kafka client does not log a
       stream of refused connections while the JVM boots.
    2. Then a real metadata request (``AdminClient.list_topics``): an open port is
       not a ready broker; one that lists itself in the metadata is.
    3. Between attempts check ``alive()``: a broker that died (bad config, port
       taken) fails at once with its log tail instead of after the full timeout.
    """
    started = time.monotonic()
    deadline = started + timeout
    host, port = _host_port(bootstrap)
    admin: AdminClient | None = None
    last_error = "port not open"
    while True:
        if alive is not None and not alive():
            msg = f"kafka exited while starting (bootstrap {bootstrap}):\n{process.tail(logs)}"
            raise StackError(msg)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            msg = f"kafka at {bootstrap} not ready after {timeout:.0f} s ({last_error})" + (
                f":\n{process.tail(logs)}" if logs else ""
            )
            raise StackError(msg)
        if admin is None and _tcp_open(host, port):
            config: dict[str, Any] = {
                "bootstrap.servers": bootstrap,
                "reconnect.backoff.max.ms": 500,
                "logger": _client_log,
                **(security or {}),
            }
            admin = AdminClient(config)
        if admin is not None:
            try:
                metadata = admin.list_topics(timeout=max(0.5, min(2.0, remaining)))
            except KafkaException as exc:
                last_error = str(exc)
            else:
                if metadata.brokers:
                    return time.monotonic() - started
                last_error = "no broker in metadata yet"
        time.sleep(0.2)
