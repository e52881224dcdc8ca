"""Errors of the local stack manager: each says what failed and what to do about it."""

from __future__ import annotations


class StackError(RuntimeError):
    """The local stack could not be started, reached or stopped."""


class PortBusyError(StackError):
    """A port the stack was asked to use is already taken by another process."""


class MissingProgramError(StackError):
    """A program the stack needs (``java``, ``mvn``, ``redis-server``) is not installed."""
