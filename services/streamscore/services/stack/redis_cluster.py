"""A local Redis Cluster of ``redis-server`` processes, for tests and benchmarks.

:class:`LocalRedisCluster` starts ``n`` primaries (no replicas) on loopback:

1. Pick ``n`` free ports whose cluster-bus ports (``port + 10000``) are free too.
2. Write one ``redis.conf`` per node into its own folder (``cluster-enabled yes``,
   its own ``nodes.conf``, no persistence: the cluster lives as long as its owner)
   and start ``redis-server`` on it; wait until each answers ``PING``.
3. ``redis-cli --cluster create ... --cluster-replicas 0 --cluster-yes`` spreads
   the 16384 slots evenly over the nodes and makes them meet.
4. Wait until every node reports ``cluster_state:ok`` (gossip has converged), so a
   client's first ``CLUSTER SLOTS`` sees the whole map.

:meth:`LocalRedisCluster.stop` terminates the processes it started (SIGTERM,
then SIGKILL after a grace period) and removes nothing it did not create.
``REDIS_URL`` for the services is :attr:`LocalRedisCluster.url`
(``redis+cluster://127.0.0.1:<first port>``).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import redis as redis_py
from redis.exceptions import RedisError

from streamscore.services.stack.errors import MissingProgramError, StackError
from streamscore.services.stack.ports import HOST, free_port, is_free
from streamscore.services.stack.redis import redis_server, wait_redis_ready

#: Offset of the cluster bus port from the client port (fixed by Redis).
BUS_OFFSET = 10_000


def redis_cli() -> str:
    """Path of ``redis-cli`` (installed with ``redis-server`` by the OS packages)."""
    found = shutil.which("redis-cli")
    if found is None:
        raise MissingProgramError("`redis-cli` is not installed or not on PATH (redis-tools)")
    return found


def node_config(*, port: int, data_dir: Path) -> str:
    """``redis.conf`` of one cluster node: loopback, cluster mode, no persistence.

    >>> print(node_config(port=7000, data_dir=Path("/tmp/n0")).splitlines()[2])
    cluster-enabled yes
    """
    return "".join(
        f"{line}\n"
        for line in (
            f"bind {HOST}",
            f"port {port}",
            "cluster-enabled yes",
            "cluster-config-file nodes.conf",
            "cluster-node-timeout 5000",
            "protected-mode yes",
            "daemonize no",
            f'dir "{data_dir}"',
            "appendonly no",
            'save ""',
            "logfile redis.log",
        )
    )


def _cluster_ports(n: int) -> list[int]:
    """``n`` free client ports whose bus ports are free too (step 1)."""
    ports: list[int] = []
    while len(ports) < n:
        p = free_port(exclude=ports)
        if p + BUS_OFFSET < 65536 and is_free(p + BUS_OFFSET) and p + BUS_OFFSET not in ports:
            ports.append(p)
    return ports


@dataclass
class LocalRedisCluster:
    """``n`` cluster primaries under ``root`` (see the module doc); a context manager."""

    root: Path
    n: int = 3
    ports: list[int] = field(default_factory=list)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def url(self) -> str:
        """``REDIS_URL`` of this cluster (one seed node; clients discover the rest)."""
        return f"redis+cluster://{HOST}:{self.ports[0]}"

    def start(self, timeout_s: float = 30.0) -> LocalRedisCluster:
        server, cli = redis_server(), redis_cli()
        self.ports = _cluster_ports(self.n)
        try:
            for port in self.ports:  # step 2
                node_dir = self.root / f"node-{port}"
                node_dir.mkdir(parents=True, exist_ok=True)
                conf = node_dir / "redis.conf"
                conf.write_text(node_config(port=port, data_dir=node_dir), encoding="utf-8")
                self.procs.append(
                    subprocess.Popen(
                        [server, str(conf)],
                        cwd=node_dir,
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    )
                )
            for port, proc in zip(self.ports, self.procs, strict=True):
                wait_redis_ready(
                    f"redis://{HOST}:{port}/0",
                    timeout_s,
                    alive=lambda p=proc: p.poll() is None,  # type: ignore[misc]
                    logs=[self.root / f"node-{port}" / "redis.log"],
                )
            nodes = [f"{HOST}:{p}" for p in self.ports]
            create = [cli, "--cluster", "create", *nodes, "--cluster-replicas", "0"]
            done = subprocess.run(
                [*create, "--cluster-yes"], capture_output=True, timeout=timeout_s, check=False
            )
            if done.returncode != 0:
                out = (done.stdout + done.stderr).decode(errors="replace")
                raise StackError(f"redis-cli --cluster create failed:\n{out[-2000:]}")
            self._wait_ok(timeout_s)  # step 4
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ok(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        pending = set(self.ports)
        while pending:
            for port in sorted(pending):
                client = redis_py.Redis(host=HOST, port=port, socket_timeout=1.0)
                try:
                    info = client.execute_command("CLUSTER INFO")  # type: ignore[no-untyped-call]
                    if str(info.get("cluster_state")) == "ok":
                        pending.discard(port)
                except RedisError:
                    pass
                finally:
                    client.close()
            if pending and time.monotonic() > deadline:
                raise StackError(f"cluster nodes {sorted(pending)} not ok after {timeout_s:.0f} s")
            if pending:
                time.sleep(0.1)

    def stop(self, grace_s: float = 5.0) -> None:
        """Terminate the nodes this object started (SIGTERM, then SIGKILL)."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(grace_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs.clear()

    def __enter__(self) -> LocalRedisCluster:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
