"""Store implementations. ``MemoryStore`` is the embedded default."""

from .memory import MemoryStore

__all__ = ["MemoryStore"]
