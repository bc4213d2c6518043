"""chitchat: real-time chat for Tornado applications.

The public surface is exactly ``__all__``; everything else is internal.
"""

from ._gc import tune_gc
from .broker import Broker
from .brokers.memory import MemoryBroker
from .chat import Chat, create_server
from .errors import (
    AlreadyAnsweredError,
    BackendError,
    ChitchatError,
    ConfigurationError,
    ProtocolError,
)
from .log import Position
from .origin import OriginPolicy
from .presence import MemoryPresence, PresenceBackend
from .router import ChatRouter
from .store import Retention, Store
from .stores.memory import MemoryStore
from .stores.sqlite import SQLiteStore
from .transports.base import Connection, RequestInfo, Transport
from .transports.sockjs import ChitchatConnection
from .user import Message, User

__version__ = "0.1.0"

__all__ = [
    "AlreadyAnsweredError",
    "BackendError",
    "Broker",
    "Chat",
    "ChatRouter",
    "ChitchatConnection",
    "ChitchatError",
    "ConfigurationError",
    "Connection",
    "MemoryBroker",
    "MemoryPresence",
    "MemoryStore",
    "Message",
    "OriginPolicy",
    "Position",
    "PresenceBackend",
    "ProtocolError",
    "RequestInfo",
    "Retention",
    "SQLiteStore",
    "Store",
    "Transport",
    "User",
    "create_server",
    "tune_gc",
]
