"""Transports carry chitchat frames; ``base`` is the interface they implement.

The SockJS and native WebSocket adapters are imported from their own modules, so that
using one never imports the other's library.
"""

from .base import Connection, RequestInfo, Transport

__all__ = ["Connection", "RequestInfo", "Transport"]
