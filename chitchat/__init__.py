"""chitchat: real-time chat for Tornado applications.

The public surface is exactly ``__all__``; everything else is internal. The Redis
engine's classes import redis-py only when they connect (``pip install chitchat[redis]``).
"""

from ._gc import tune_gc
from .broker import Broker
from .brokers.memory import MemoryBroker
from .brokers.redis import RedisBroker
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
from .publisher import Publisher
from .redis_presence import RedisPresence
from .router import ChatRouter
from .store import Retention, Store
from .stores.memory import MemoryStore
from .stores.redis import RedisStore
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
    "Publisher",
    "RedisBroker",
    "RedisPresence",
    "RedisStore",
    "RequestInfo",
    "Retention",
    "SQLiteStore",
    "Store",
    "Transport",
    "User",
    "create_server",
    "tune_gc",
]
