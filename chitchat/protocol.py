"""The wire format: the one module that knows what frames look like.

Every transport carries text frames, each one JSON object with a ``"t"`` type field;
``docs/PROTOCOL.md`` is the human-readable copy of this module, and the browser client
mirrors these constants in ``static/src/protocol.js`` (a test checks that they agree).

Outgoing frames are built by string concatenation around JSON that was encoded once:
a message's JSON text (``Message.raw``) is made when the message is accepted and is then
pasted, unchanged, into every frame that carries it.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import re
from collections.abc import Iterable
from typing import Any, Final

from .errors import ProtocolError
from .user import Message

__all__ = [
    "CLIENT_FRAMES",
    "FATAL_CODES",
    "PING",
    "PONG",
    "SERVER_FRAMES",
    "VERSION",
    "Auth",
    "Code",
    "Ping",
    "Pong",
    "Send",
    "ack",
    "decode",
    "dumps",
    "error",
    "make_message",
    "messages",
    "nack",
    "unauthorized",
    "welcome",
]

VERSION: Final = 1

CLIENT_FRAMES: Final = ("auth", "send", "ping", "pong")
SERVER_FRAMES: Final = (
    "welcome", "unauthorized", "messages", "ack", "nack", "ping", "pong", "error",
)


class Code(enum.IntEnum):
    """Error codes carried by ``error`` frames (see docs/PROTOCOL.md)."""

    MALFORMED = 4000
    UNKNOWN_TYPE = 4001
    TOO_LARGE = 4002
    NOT_AUTHORIZED = 4003
    ORIGIN_REFUSED = 4004
    AUTH_TIMEOUT = 4005
    UNSUPPORTED_VERSION = 4006
    INVALID = 4007
    ALREADY_AUTHORIZED = 4008
    HEARTBEAT_TIMEOUT = 4009
    FLOODED = 4010


#: After an error frame with one of these codes the server closes the connection.
FATAL_CODES: Final = frozenset(
    {Code.ORIGIN_REFUSED, Code.AUTH_TIMEOUT, Code.UNSUPPORTED_VERSION, Code.HEARTBEAT_TIMEOUT}
)

_LEADING_REF = re.compile(r'\s*\{\s*"t"\s*:\s*"send"\s*,\s*"ref"\s*:\s*(\d{1,15})\s*[,}]')
_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def dumps(value: Any) -> str:
    """Encode ``value`` as compact JSON; raises ``TypeError``/``ValueError`` if it can't."""
    return _encoder.encode(value)


# -- client frames, decoded -------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Auth:
    version: int
    data: Any


@dataclasses.dataclass(frozen=True, slots=True)
class Send:
    ref: int
    data: dict[str, Any]


@dataclasses.dataclass(frozen=True, slots=True)
class Ping:
    pass


@dataclasses.dataclass(frozen=True, slots=True)
class Pong:
    pass


ClientFrame = Auth | Send | Ping | Pong


def decode(text: str, max_size: int) -> ClientFrame:
    """Decode one client frame.

    Raises ``ProtocolError`` with the code the client should see: ``TOO_LARGE`` before
    anything is parsed, ``MALFORMED`` for text that is not a JSON object with a string
    ``t``, ``UNKNOWN_TYPE``, or ``INVALID`` for fields of the wrong type.
    """
    if len(text) > max_size:
        # Not parsed, but the client's encoder puts "ref" first: find it for the answer.
        ref = _LEADING_REF.match(text)
        raise ProtocolError(Code.TOO_LARGE, f"frame larger than {max_size} characters",
                            int(ref.group(1)) if ref else None)
    try:
        obj = json.loads(text)
    except ValueError:
        raise ProtocolError(Code.MALFORMED, "frame is not valid JSON") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("t"), str):
        raise ProtocolError(Code.MALFORMED, 'frame is not a JSON object with a string "t"')
    kind = obj["t"]
    if kind == "send":
        ref = obj.get("ref")
        if not isinstance(ref, int) or isinstance(ref, bool) or ref < 0:
            raise ProtocolError(Code.INVALID, '"ref" must be a non-negative integer')
        data = obj.get("data")
        if not isinstance(data, dict):
            raise ProtocolError(Code.INVALID, '"data" must be a JSON object', ref)
        return Send(ref, data)
    if kind == "ping":
        return Ping()
    if kind == "pong":
        return Pong()
    if kind == "auth":
        version = obj.get("v")
        if not isinstance(version, int) or isinstance(version, bool):
            raise ProtocolError(Code.INVALID, '"v" must be an integer')
        return Auth(version, obj.get("data"))
    raise ProtocolError(Code.UNKNOWN_TYPE, f"unknown frame type {kind[:40]!r}")


# -- server frames, encoded -------------------------------------------------------------

PING: Final = '{"t":"ping"}'
PONG: Final = '{"t":"pong"}'


def make_message(message_id: str, user: str | None, data: Any, ts: int) -> Message:
    """Build a Message and encode its JSON once. Raises ``TypeError``/``ValueError`` when
    ``data`` is not JSON-serializable."""
    raw = dumps({"id": message_id, "user": user, "data": data, "ts": ts})
    return Message(message_id, user, data, ts, raw)


def messages(raws: Iterable[str]) -> str:
    """A ``messages`` frame around already-encoded messages, oldest first."""
    return '{"t":"messages","list":[' + ",".join(raws) + "]}"


def welcome(user: str, meta: Any, heartbeat_ms: int) -> str:
    return dumps({"t": "welcome", "user": user, "meta": meta, "hb": heartbeat_ms})


def unauthorized(meta: Any) -> str:
    return dumps({"t": "unauthorized", "meta": meta})


def ack(ref: int, message: Message) -> str:
    return '{"t":"ack","ref":' + str(ref) + ',"msg":' + message.raw + "}"


def nack(ref: int, meta: Any) -> str:
    return dumps({"t": "nack", "ref": ref, "meta": meta})


def error(code: Code, reason: str, ref: int | None = None) -> str:
    frame: dict[str, Any] = {
        "t": "error", "code": int(code), "reason": reason, "fatal": code in FATAL_CODES,
    }
    if ref is not None:
        frame["ref"] = ref
    return dumps(frame)
