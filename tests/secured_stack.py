"""A private Kafka with a SASL/SCRAM listener and a private Redis with an ACL user, for tests.

Both run as child processes of the test on free loopback ports, in a temporary
folder, and are stopped afterwards. They are configured by hand here (the local
stack, :mod:`streamscore.services.stack`, runs PLAINTEXT and no password):

* Kafka (KRaft, one node, the stack's cached jars): two client listeners, both
  ``SCRAM-SHA-256``, one ``SASL_PLAINTEXT`` and one ``SASL_SSL`` (certificate signed
  by a throwaway CA made with the ``openssl`` command); the SCRAM users are written into the
  metadata log when the storage is formatted (``StorageTool format --add-scram``),
  so they exist before the broker takes its first request. The controller
  listener stays PLAINTEXT on loopback (it is not a client listener).
* Redis: the ``default`` user is switched off and one ACL user with a password
  may do everything; optionally a TLS port (``--tls-port``, same CA), no plain port.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from streamscore.libs.config import Settings
from streamscore.libs.security import kafka_security_config, redis_security_options
from streamscore.services.stack import kafka
from streamscore.services.stack.layout import StackLayout
from streamscore.services.stack.redis import redis_server, wait_redis_ready

HOST = "127.0.0.1"
MECHANISM = "SCRAM-SHA-256"
#: Inter-broker user (the broker's own client on its SASL listener).
ADMIN_USER, ADMIN_PASSWORD = "broker-admin", "broker-admin-pw-5f1c"
#: The application's users: what the streamscore processes are given.
KAFKA_USER, KAFKA_PASSWORD = "streamscore-app", "kafka-app-pw-9d27c1"
REDIS_USER, REDIS_PASSWORD = "streamscore-app", "redis-app-pw-4be8a0"


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class SecuredStack:
    """Where the secured servers listen, and the environment that reaches them."""

    bootstrap: str
    #: The broker's SASL_SSL listener (same users; certificate signed by ``ca``).
    tls_bootstrap: str
    redis_url: str
    folder: Path
    ca: Path
    redis_ca: Path | None = None

    def env(
        self,
        *,
        kafka_password: str = KAFKA_PASSWORD,
        redis_password: str = REDIS_PASSWORD,
        kafka_tls: bool = False,
    ) -> dict[str, str]:
        """Environment variables of a streamscore process using these servers."""
        env = {
            "KAFKA_BOOTSTRAP": self.tls_bootstrap if kafka_tls else self.bootstrap,
            "REDIS_URL": self.redis_url,
            "STREAMSCORE_KAFKA_SECURITY_PROTOCOL": "SASL_SSL" if kafka_tls else "SASL_PLAINTEXT",
            "STREAMSCORE_KAFKA_SASL_MECHANISM": MECHANISM,
            "STREAMSCORE_KAFKA_SASL_USERNAME": KAFKA_USER,
            "STREAMSCORE_KAFKA_SASL_PASSWORD": kafka_password,
            "STREAMSCORE_REDIS_USERNAME": REDIS_USER,
            "STREAMSCORE_REDIS_PASSWORD": redis_password,
        }
        if kafka_tls:
            env["STREAMSCORE_KAFKA_SSL_CA_FILE"] = str(self.ca)
        if self.redis_ca is not None:
            env["STREAMSCORE_REDIS_SSL_CA_FILE"] = str(self.redis_ca)
        return env

    def settings(self, *, kafka_tls: bool = False, **changes: str) -> Settings:
        """The settings of a client of these servers (``changes``: other passwords)."""
        env = self.env(kafka_tls=kafka_tls, **changes)
        return Settings(
            profile="test",
            home=self.folder / "home",
            kafka_bootstrap=env["KAFKA_BOOTSTRAP"],
            redis_url=env["REDIS_URL"],
            kafka_security_protocol="SASL_SSL" if kafka_tls else "SASL_PLAINTEXT",
            kafka_ssl_ca_file=self.ca if kafka_tls else None,
            kafka_sasl_mechanism=MECHANISM,
            kafka_sasl_username=KAFKA_USER,
            kafka_sasl_password=env["STREAMSCORE_KAFKA_SASL_PASSWORD"],
            redis_username=REDIS_USER,
            redis_password=env["STREAMSCORE_REDIS_PASSWORD"],
            redis_ssl_ca_file=self.redis_ca,
        )


def _jaas(user: str, password: str) -> str:
    return (
        "org.apache.kafka.common.security.scram.ScramLoginModule required "
        f'username="{user}" password="{password}";'
    )


def kafka_properties(
    *, port: int, tls_port: int, controller_port: int, data_dir: Path, keystore: Path
) -> str:
    """``server.properties`` of a one-node KRaft broker with SASL/SCRAM listeners.

    ``SASL_PLAINTEXT`` on ``port`` and ``SASL_SSL`` on ``tls_port``; the TLS
    listener's key and certificate chain come from one PEM file (``keystore``,
    Kafka's ``ssl.keystore.type=PEM``, the key unencrypted PKCS#8).
    """
    mech = MECHANISM.lower()
    jaas = _jaas(ADMIN_USER, ADMIN_PASSWORD)
    lines = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@{HOST}:{controller_port}",
        "listeners": f"SASL_PLAINTEXT://{HOST}:{port},SASL_SSL://{HOST}:{tls_port},"
        f"CONTROLLER://{HOST}:{controller_port}",
        "advertised.listeners": f"SASL_PLAINTEXT://{HOST}:{port},SASL_SSL://{HOST}:{tls_port}",
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": (
            "SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT"
        ),
        "inter.broker.listener.name": "SASL_PLAINTEXT",
        "sasl.enabled.mechanisms": MECHANISM,
        "sasl.mechanism.inter.broker.protocol": MECHANISM,
        f"listener.name.sasl_plaintext.{mech}.sasl.jaas.config": jaas,
        f"listener.name.sasl_ssl.{mech}.sasl.jaas.config": jaas,
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(keystore),
        "log.dirs": str(data_dir),
        "offsets.topic.replication.factor": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        "auto.create.topics.enable": "false",
        "num.partitions": "1",
    }
    return "".join(f"{k}={v}\n" for k, v in lines.items())


def _java(libs: Path, folder: Path) -> list[str]:
    java = shutil.which("java")
    assert java is not None, "java is not installed"
    log4j = folder / "log4j.properties"
    log4j.write_text(
        "log4j.rootLogger=WARN, stdout\n"
        "log4j.appender.stdout=org.apache.log4j.ConsoleAppender\n"
        "log4j.appender.stdout.layout=org.apache.log4j.PatternLayout\n"
        "log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n\n",
        encoding="utf-8",
    )
    return [java, "-Xms128m", "-Xmx512m", f"-Dlog4j.configuration=file:{log4j}", "-cp", f"{libs}/*"]


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def make_ca(folder: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for ``127.0.0.1``: ``(ca, cert, key)``."""
    folder.mkdir(parents=True, exist_ok=True)
    ca_key, ca, key, csr, cert = (
        folder / n for n in ("ca.key", "ca.pem", "server.key", "server.csr", "server.pem")
    )
    ext = folder / "san.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n", encoding="utf-8")
    for cmd in (
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key,
         "-out", ca, "-days", "1", "-subj", "/CN=streamscore-test-ca"],
        ["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr,
         "-subj", "/CN=127.0.0.1"],
        ["openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
         "-out", cert, "-days", "1", "-extfile", ext],
    ):  # fmt: skip
        subprocess.run([str(c) for c in cmd], check=True, capture_output=True)
    return ca, cert, key


@contextlib.contextmanager
def secured_stack(folder: Path, *, redis_tls: bool = False) -> Iterator[SecuredStack]:
    """Start the secured Kafka and Redis in ``folder``; stop both on exit."""
    folder.mkdir(parents=True, exist_ok=True)
    port, tls_port, controller_port, redis_port = (free_port() for _ in range(4))
    ca, cert, key = make_ca(folder / "tls")
    keystore = folder / "tls" / "kafka-keystore.pem"
    keystore.write_bytes(key.read_bytes() + cert.read_bytes())
    cache = StackLayout.for_home(Settings().home).jar_cache
    libs = kafka.ensure_jars(cache, progress=lambda _m: None)
    data = folder / "kafka-data"
    server = folder / "server.properties"
    server.write_text(
        kafka_properties(
            port=port,
            tls_port=tls_port,
            controller_port=controller_port,
            data_dir=data,
            keystore=keystore,
        ),
        encoding="utf-8",
    )
    java = _java(libs, folder)
    fmt = [*java, "kafka.tools.StorageTool", "format", "-c", str(server),
           f"--cluster-id={kafka.new_cluster_id()}"]  # fmt: skip
    for user, password in ((ADMIN_USER, ADMIN_PASSWORD), (KAFKA_USER, KAFKA_PASSWORD)):
        # SCRAM users exist in the metadata log from the start (KRaft has no ZooKeeper
        # to add them to before the broker runs).
        fmt += ["--add-scram", f"{MECHANISM}=[name={user},password={password}]"]
    subprocess.run(fmt, check=True, capture_output=True)

    redis_args = [
        redis_server(), "--bind", HOST, "--save", "", "--appendonly", "no", "--dir", str(folder),
        "--user", "default", "off",
        "--user", REDIS_USER, "on", f">{REDIS_PASSWORD}", "~*", "&*", "+@all",
    ]  # fmt: skip
    scheme = "redis"
    if redis_tls:
        redis_args += ["--port", "0", "--tls-port", str(redis_port), "--tls-cert-file", str(cert),
                       "--tls-key-file", str(key), "--tls-ca-cert-file", str(ca),
                       "--tls-auth-clients", "no"]  # fmt: skip
        scheme = "rediss"
    else:
        redis_args += ["--port", str(redis_port)]
    kafka_log, redis_log = folder / "kafka.out", folder / "redis.out"
    procs = [
        subprocess.Popen(
            [*java, kafka.MARKER, str(server)],
            stdout=kafka_log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        ),
        subprocess.Popen(
            redis_args,
            stdout=redis_log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        ),
    ]
    stack = SecuredStack(
        bootstrap=f"{HOST}:{port}",
        tls_bootstrap=f"{HOST}:{tls_port}",
        redis_url=f"{scheme}://{HOST}:{redis_port}/0",
        folder=folder,
        ca=ca,
        redis_ca=ca if redis_tls else None,
    )
    try:
        settings = stack.settings()
        options = redis_security_options(settings, stack.redis_url)
        wait_redis_ready(stack.redis_url, 20, options=options, logs=[redis_log])
        started = time.monotonic()
        kafka.wait_kafka_ready(
            stack.bootstrap,
            90,
            alive=lambda: procs[0].poll() is None,
            logs=[kafka_log],
            security=kafka_security_config(settings),
        )
        kafka.wait_kafka_ready(
            stack.tls_bootstrap,
            30,
            alive=lambda: procs[0].poll() is None,
            logs=[kafka_log],
            security=kafka_security_config(stack.settings(kafka_tls=True)),
        )
        print(f"\nsecured kafka ready in {time.monotonic() - started:.1f} s")
        yield stack
    finally:
        for proc in procs:
            _stop(proc)
