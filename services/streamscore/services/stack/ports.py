"""Loopback ports for the local stack: the conventional defaults when free, else free ones.

>>> port = free_port()
>>> 1024 <= port <= 65535 and is_free(port)
True
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Collection

from streamscore.services.stack.errors import PortBusyError, StackError

#: Every listener of the local stack binds to loopback only.
HOST = "127.0.0.1"


def is_free(port: int, host: str = HOST) -> bool:
    """Whether ``host:port`` can be bound right now.

    ``SO_REUSEADDR`` is set like Kafka and Redis set it, so a port that only has
    connections in ``TIME_WAIT`` counts as free, while a listener makes it busy.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = HOST, exclude: Collection[int] = ()) -> int:
    """A port the kernel reports free on ``host`` (bind to port 0), not in ``exclude``."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            port: int = sock.getsockname()[1]
        if port not in exclude:
            return port


def require_free(port: int, *, what: str, env_var: str) -> int:
    """Return ``port`` if it is free, else raise :class:`PortBusyError` saying what to do."""
    if not is_free(port):
        msg = (
            f"{what}: port {HOST}:{port} (requested by {env_var}={port}) is already in use. "
            f"Stop the process that listens there (see `ss -ltnp 'sport = :{port}'`), "
            f"set {env_var} to another port, or unset {env_var} to pick a free port "
            "automatically."
        )
        raise PortBusyError(msg)
    return port


def choose_port(
    default: int,
    *,
    what: str,
    env_var: str,
    taken: Collection[int] = (),
    progress: Callable[[str], None] = print,
) -> int:
    """The port for ``what``: ``$env_var`` if set (must be free), else ``default`` if free,
    else a free port (said in ``progress``)."""
    requested = os.environ.get(env_var, "").strip()
    if requested:
        try:
            port = int(requested)
        except ValueError:
            msg = f"{what}: {env_var}={requested!r} is not a port number"
            raise StackError(msg) from None
        if not 0 < port < 65536 or port in taken:
            msg = f"{what}: {env_var}={port} is not usable (out of range or used by the stack)"
            raise StackError(msg)
        return require_free(port, what=what, env_var=env_var)
    if default not in taken and is_free(default):
        return default
    port = free_port(exclude=taken)
    progress(f"{what}: default port {default} is busy, using {port} instead")
    return port
