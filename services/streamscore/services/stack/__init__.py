"""The local stack: Apache Kafka (KRaft) and Redis as local processes on loopback.

A façade that only delegates: :mod:`.lifecycle` (``up`` / ``down`` / ``status``),
:mod:`.kafka` and :mod:`.redis` (readiness waits other tools reuse). Used by
``streamscore up`` / ``down`` / ``status`` / ``env`` and by the integration tests.
"""

from streamscore.services.stack.errors import MissingProgramError, PortBusyError, StackError
from streamscore.services.stack.kafka import KAFKA_VERSION, wait_kafka_ready
from streamscore.services.stack.lifecycle import StackInfo, down, env_lines, status, up
from streamscore.services.stack.redis import wait_redis_ready

__all__ = [
    "KAFKA_VERSION",
    "MissingProgramError",
    "PortBusyError",
    "StackError",
    "StackInfo",
    "down",
    "env_lines",
    "status",
    "up",
    "wait_kafka_ready",
    "wait_redis_ready",
]
