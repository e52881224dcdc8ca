"""Child processes of a job (the demo): started with their own log, watched, stopped cleanly.

Each child is a ``streamscore`` subcommand in its own process group, on the
job's Kafka and Redis (environment), with its Prometheus port on loopback and
its output in ``<logs>/<name>.log``. Stopping is graceful first:

1. SIGTERM to every child at once (services commit their last batch and exit);
2. wait up to ``grace_s`` for all of them;
3. SIGKILL to the process group of any child still alive, and wait for it.

So a stopped job leaves no process behind, whatever state a child was in.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Child:
    """One supervised process."""

    name: str
    args: list[str]
    metrics_port: int | None
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def tail(self, lines: int = 20) -> str:
        """The last lines of its log (for an error message)."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


@dataclass
class Supervisor:
    """Starts ``streamscore`` subcommands and stops them all (see the module docstring)."""

    logs: Path
    env: dict[str, str]
    children: list[Child] = field(default_factory=list)

    def start(self, name: str, args: list[str], *, metrics_port: int | None = None) -> Child:
        self.logs.mkdir(parents=True, exist_ok=True)
        env = dict(self.env)
        env.pop("STREAMSCORE_METRICS_PORT", None)
        if metrics_port is not None:
            env["STREAMSCORE_METRICS_PORT"] = str(metrics_port)
        log = self.logs / f"{name}.log"
        cmd = [sys.executable, "-m", "streamscore.services.cli", *args]
        with log.open("ab") as out:
            proc = subprocess.Popen(
                cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        child = Child(name, args, metrics_port, proc, log)
        self.children.append(child)
        return child

    def dead(self) -> list[Child]:
        """Children that exited (a service should not, until stopped)."""
        return [c for c in self.children if not c.alive]

    def stop(self, grace_s: float = 30.0) -> dict[str, int | None]:
        """Steps 1-3; returns each child's exit code (``None``: it had to be killed)."""
        for c in self.children:  # step 1
            if c.alive:
                c.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        codes: dict[str, int | None] = {}
        for c in self.children:  # step 2
            try:
                codes[c.name] = c.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                codes[c.name] = None
        for c in self.children:  # step 3
            if codes[c.name] is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(c.proc.pid, signal.SIGKILL)
                c.proc.wait()
        return codes
