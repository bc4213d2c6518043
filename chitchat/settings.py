"""Every Chat option, checked once: ``Chat(**options)`` builds one ``Settings``.

The README's table documents each option; ``docs/SECURITY.md`` explains the limits.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from . import jsonsafe, protocol
from .errors import ConfigurationError
from .limits import Network, parse_networks, rate
from .store import Retention

__all__ = ["Settings"]


@dataclasses.dataclass(frozen=True, slots=True)
class Settings:
    # connections
    auth_timeout: float = 10.0
    handler_timeout: float = 10.0
    heartbeat: float = 10.0
    max_frame_size: int = 64 * 1024
    max_depth: int = jsonsafe.DEFAULT_MAX_DEPTH
    max_pending: int = 100
    max_backlog: int = 1024 * 1024
    # abuse
    send_rate: tuple[float, int] | None = (10.0, 30)
    frame_rate: tuple[float, int] | None = (50.0, 100)
    max_user_connections: int | None = 20
    max_ip_connections: int | None = None
    max_connections: int | None = None
    trusted_proxies: tuple[Network, ...] = ()
    # rooms and the log
    default_room: str | None = "main"
    history: int = 50
    recovery_limit: int = 5000
    retention: Retention = dataclasses.field(default_factory=Retention)
    dedup_window: float = 24 * 3600.0
    presence: bool = True
    presence_grace: float = 5.0
    presence_interval: float = 0.25
    presence_limit: int = 1000
    typing_ttl: float = 5.0
    typing_interval: float = 1.5

    @classmethod
    def build(cls, *, trusted_proxies: str | Iterable[str] = (),
              send_rate: tuple[float, int] | None = (10.0, 30),
              frame_rate: tuple[float, int] | None = (50.0, 100),
              **options: object) -> Settings:
        """Settings from the Chat's keyword options; raises ``ConfigurationError``."""
        try:
            settings = cls(trusted_proxies=parse_networks(trusted_proxies),
                           send_rate=rate("send_rate", send_rate),
                           frame_rate=rate("frame_rate", frame_rate),
                           **options)  # type: ignore[arg-type]
        except TypeError as exc:
            raise ConfigurationError(str(exc)) from None
        settings._check()
        return settings

    def _check(self) -> None:
        for name in ("auth_timeout", "handler_timeout", "heartbeat", "max_frame_size",
                     "max_pending", "max_backlog", "max_depth", "recovery_limit",
                     "dedup_window", "presence_interval", "typing_ttl", "presence_limit"):
            if not getattr(self, name) > 0:
                raise ConfigurationError(f"{name} must be positive")
        for name in ("history", "presence_grace", "typing_interval"):
            if getattr(self, name) < 0:
                raise ConfigurationError(f"{name} must be >= 0")
        if self.max_user_connections is not None and self.max_user_connections < 1:
            raise ConfigurationError("max_user_connections must be at least 1 (or None)")
        if self.default_room is not None and protocol.room_error(self.default_room):
            raise ConfigurationError(f"default_room: {protocol.room_error(self.default_room)}")
        count, age = self.retention.count, self.retention.age
        if (count is not None and count < 1) or (age is not None and age <= 0):
            raise ConfigurationError("retention keeps at least one entry for a positive time")
