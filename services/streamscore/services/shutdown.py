"""Graceful stop of a service process: SIGTERM or SIGINT sets an event the loop checks.

The loops check it between batches only, so a stop never cuts a batch: what was
consumed is produced, acknowledged and committed before the process exits.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType


def stop_on_signals() -> threading.Event:
    """An event set by the next SIGTERM or SIGINT (this process's handlers for both)."""
    stop = threading.Event()

    def on_signal(_sig: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return stop
