"""Broker implementations. ``MemoryBroker`` is the embedded default."""

from .memory import MemoryBroker

__all__ = ["MemoryBroker"]
