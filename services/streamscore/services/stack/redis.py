"""The local Redis server: config, start, readiness.

``redis-server`` comes from the OS packages (the project's set-up script installs
it); it runs on loopback with append-only persistence under the stack folder.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import redis as redis_py
from redis.exceptions import RedisError

from streamscore.libs.config import redact_url
from streamscore.services.stack import process
from streamscore.services.stack.errors import MissingProgramError, StackError
from streamscore.services.stack.layout import StackLayout
from streamscore.services.stack.ports import HOST
from streamscore.services.stack.state import ProcessRecord

#: Program name in /proc/<pid>/cmdline (Redis rewrites its title but keeps the name).
MARKER = "redis-server"


def redis_server() -> str:
    """Path of ``redis-server``, or a :class:`MissingProgramError` saying how to install it."""
    found = shutil.which("redis-server")
    if found is None:
        msg = (
            "`redis-server` is not installed or not on PATH: install it with "
            "`sudo apt-get install -y redis-server` (the project's set-up script does this), "
            "or point REDIS_URL at an existing Redis"
        )
        raise MissingProgramError(msg)
    return found


def url(port: int) -> str:
    """The ``REDIS_URL`` of a local server on ``port``.

    >>> url(6379)
    'redis://127.0.0.1:6379/0'
    """
    return f"redis://{HOST}:{port}/0"


def _quote(path: Path) -> str:
    return '"' + str(path).replace("\\", "\\\\").replace('"', '\\"') + '"'


def config_text(*, port: int, data_dir: Path, logfile: Path) -> str:
    """``redis.conf`` of the local server.

    Loopback only with protected mode; append-only file fsynced every second (at most
    one second of writes lost on a crash), no RDB snapshots; foreground process
    (the stack manager detaches it, so ``daemonize no`` keeps the pid ours).
    """
    return "".join(
        f"{line}\n"
        for line in (
            f"bind {HOST}",
            f"port {port}",
            "protected-mode yes",
            "daemonize no",
            f"dir {_quote(data_dir)}",
            "appendonly yes",
            "appendfsync everysec",
            'save ""',
            f"logfile {_quote(logfile)}",
            "loglevel notice",
        )
    )


def write_config(layout: StackLayout, *, port: int) -> Path:
    """Write ``redis.conf`` into the stack's config folder; return its path."""
    layout.config_dir.mkdir(parents=True, exist_ok=True)
    conf = layout.config_dir / "redis.conf"
    conf.write_text(
        config_text(port=port, data_dir=layout.redis_data, logfile=layout.logs_dir / "redis.log"),
        encoding="utf-8",
    )
    return conf


def start(layout: StackLayout, conf: Path) -> ProcessRecord:
    """Start ``redis-server conf`` detached; output goes to the logs folder."""
    return process.spawn(
        "redis",
        [redis_server(), str(conf)],
        marker=MARKER,
        cwd=layout.redis_data,
        stdout=layout.logs_dir / "redis.out",
        stderr=layout.logs_dir / "redis.err",
        extra_logs=[layout.logs_dir / "redis.log"],
    )


def wait_redis_ready(
    redis_url: str,
    timeout: float = 20.0,
    *,
    alive: Callable[[], bool] | None = None,
    logs: Sequence[Path | str] = (),
    options: Mapping[str, Any] | None = None,
) -> float:
    """Wait until ``redis_url`` answers PING; return seconds taken.

    ``options``: extra client arguments (credentials, TLS files) of a secured server.
    Messages name the URL without its password.

    1. PING with short socket timeouts, every 50 ms: Redis is usually up in well
       under a second, and an AOF replay after a crash is reported as LOADING (an
       error) until done, so a PONG means it serves data.
    2. Between attempts check ``alive()`` to fail fast, with the log tail, if the
       server died (bad config, port taken).
    """
    started = time.monotonic()
    deadline = started + timeout
    last_error = "no answer"
    client = redis_py.Redis.from_url(
        redis_url, socket_connect_timeout=0.5, socket_timeout=1.0, **(options or {})
    )
    shown = redact_url(redis_url)
    try:
        while True:
            if alive is not None and not alive():
                msg = f"redis exited while starting ({shown}):\n{process.tail(logs)}"
                raise StackError(msg)
            try:
                if client.ping():
                    return time.monotonic() - started
            except (RedisError, OSError) as exc:
                last_error = str(exc)
            if time.monotonic() >= deadline:
                msg = f"redis at {shown} not ready after {timeout:.0f} s ({last_error})" + (
                    f":\n{process.tail(logs)}" if logs else ""
                )
                raise StackError(msg)
            time.sleep(0.05)
    finally:
        client.close()
