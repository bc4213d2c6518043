"""The exception tree: everything chitchat raises derives from ChitchatError."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .protocol import Code

__all__ = [
    "AlreadyAnsweredError",
    "BackendError",
    "ChitchatError",
    "ConfigurationError",
    "ProtocolError",
]


class ChitchatError(Exception):
    """Root of every exception chitchat raises on purpose."""


class ConfigurationError(ChitchatError, ValueError):
    """A Chat, router or backend was set up with values that cannot work."""


class AlreadyAnsweredError(ChitchatError, RuntimeError):
    """A handler called ``good``/``bad`` after it had already answered (or timed out)."""


class BackendError(ChitchatError):
    """A broker or store failed; the original error is the ``__cause__``."""


class ProtocolError(ChitchatError):
    """A frame broke the wire protocol; ``code`` is the protocol error code."""

    def __init__(self, code: Code, reason: str, ref: int | None = None) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason
        self.ref = ref
