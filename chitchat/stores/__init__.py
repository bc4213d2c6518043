"""Store implementations. ``MemoryStore`` is the embedded default; ``SQLiteStore``
keeps the logs in a file (sqlite3 is in the standard library: nothing to install)."""

from .memory import MemoryStore
from .sqlite import SQLiteStore

__all__ = ["MemoryStore", "SQLiteStore"]
