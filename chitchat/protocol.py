"""The wire format: the one module that knows what frames look like.

Every transport carries text frames, each one JSON object with a ``"t"`` type field;
``docs/PROTOCOL.md`` is the human-readable copy of this module, and the browser client
mirrors these constants in ``static/src/protocol.js`` (a test checks that they agree).

Incoming frames are decoded into small frozen dataclasses, after ``jsonsafe`` has made
sure they hold nothing the server could not deliver again. Outgoing frames are built by
string concatenation around JSON that was encoded once: a message's JSON text
(``Message.raw``) is made when the message is accepted and is then pasted, unchanged,
into every frame that carries it.
"""

from __future__ import annotations

import dataclasses
import enum
import re
from collections.abc import Iterable, Mapping
from typing import Any, Final

from . import jsonsafe
from .errors import ProtocolError
from .jsonsafe import JSONRefused

__all__ = [
    "CLIENT_FRAMES",
    "FATAL_CODES",
    "LIMITS",
    "MAX_INT",
    "PING",
    "PONG",
    "SERVER_FRAMES",
    "VERSION",
    "Auth",
    "Code",
    "Edit",
    "History",
    "Join",
    "Leave",
    "Ping",
    "Pong",
    "React",
    "Read",
    "Remove",
    "Send",
    "Since",
    "Typing",
    "decode",
    "dumps",
    "leading_ref",
    "room_error",
]

VERSION: Final = 1

CLIENT_FRAMES: Final = (
    "auth", "send", "join", "leave", "typing", "history", "read", "edit", "remove", "react",
    "ping", "pong",
)
SERVER_FRAMES: Final = (
    "welcome", "unauthorized", "messages", "edit", "remove", "reactions", "reset", "joined",
    "removed", "presence", "typing", "read", "ack", "nack", "ping", "pong", "error",
)

#: Sizes both sides check (the client checks them before sending).
LIMITS: Final = {"ROOM_NAME": 200, "CID": 64, "EMOJI": 32, "REACTIONS": 20, "HISTORY": 100}

#: The largest integer a browser represents exactly (Number.MAX_SAFE_INTEGER).
MAX_INT: Final = 2**53 - 1


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
    TOO_DEEP = 4011
    FLOOD_CLOSED = 4012
    TOO_MANY_CONNECTIONS = 4013
    RESTARTING = 4014
    BAD_ROOM = 4015
    NOT_JOINED = 4016


#: After an error frame with one of these codes the server closes the connection.
FATAL_CODES: Final = frozenset({
    Code.ORIGIN_REFUSED, Code.AUTH_TIMEOUT, Code.UNSUPPORTED_VERSION, Code.HEARTBEAT_TIMEOUT,
    Code.FLOOD_CLOSED, Code.TOO_MANY_CONNECTIONS, Code.RESTARTING,
})

_REFUSED = {"not_json": Code.MALFORMED, "surrogate": Code.MALFORMED, "too_deep": Code.TOO_DEEP}
_LEADING_REF = re.compile(r'\s*\{\s*"t"\s*:\s*"[a-z]+"\s*,\s*"ref"\s*:\s*(\d{1,16})\s*[,}]')
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
_CID = re.compile(r"[A-Za-z0-9_.:-]{1,64}\Z")
_EMOJI_BAD = re.compile(r"[\s\x00-\x1f\x7f-\x9f]")


def dumps(value: Any) -> str:
    """Encode ``value`` as compact JSON that every transport can carry (see ``jsonsafe``);
    raises ``TypeError``, or ``JSONRefused`` (a ``ValueError``)."""
    return jsonsafe.dumps(value)


def room_error(room: object) -> str | None:
    """Why ``room`` is not a valid room name, or None when it is."""
    if not isinstance(room, str):
        return "a room name must be a string"
    if not 0 < len(room) <= LIMITS["ROOM_NAME"]:
        return f"a room name has 1 to {LIMITS['ROOM_NAME']} characters"
    if _CONTROL.search(room):
        return "a room name has no control characters"
    return None


# -- client frames, decoded -------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Since:
    """A client's position in a room's log: it has every entry up to ``seq`` of ``epoch``."""

    epoch: str
    seq: int


@dataclasses.dataclass(frozen=True, slots=True)
class Auth:
    version: int
    data: Any
    since: Since | None = None
    default: bool = True  # False: do not put this connection in the default room


@dataclasses.dataclass(frozen=True, slots=True)
class Send:
    ref: int
    data: dict[str, Any]
    room: str | None = None  # None: the default room
    cid: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Join:
    ref: int
    room: str
    data: Any = None
    since: Since | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Leave:
    ref: int
    room: str


@dataclasses.dataclass(frozen=True, slots=True)
class Typing:
    room: str


@dataclasses.dataclass(frozen=True, slots=True)
class History:
    ref: int
    room: str
    before: int | None
    limit: int


@dataclasses.dataclass(frozen=True, slots=True)
class Read:
    ref: int
    room: str
    seq: int


@dataclasses.dataclass(frozen=True, slots=True)
class Edit:
    ref: int
    room: str
    id: str
    data: dict[str, Any]


@dataclasses.dataclass(frozen=True, slots=True)
class Remove:
    ref: int
    room: str
    id: str


@dataclasses.dataclass(frozen=True, slots=True)
class React:
    ref: int
    room: str
    id: str
    emoji: str


@dataclasses.dataclass(frozen=True, slots=True)
class Ping:
    pass


@dataclasses.dataclass(frozen=True, slots=True)
class Pong:
    pass


ClientFrame = (
    Auth | Send | Join | Leave | Typing | History | Read | Edit | Remove | React | Ping | Pong
)
#: Frames that carry a ``ref`` and are answered by ``ack``/``nack``/``error``.
Request = Send | Join | Leave | History | Read | Edit | Remove | React
#: Frames that name a room the connection must be in.
RoomFrame = Send | Leave | Typing | History | Read | Edit | Remove | React

_PING, _PONG = Ping(), Pong()


def decode(text: str, max_size: int, max_depth: int = jsonsafe.DEFAULT_MAX_DEPTH) -> ClientFrame:
    """Decode one client frame.

    Raises ``ProtocolError`` with the code the client should see (and the frame's
    ``ref`` when it could be read): ``TOO_LARGE`` before anything is parsed,
    ``MALFORMED`` for text that is not a JSON object with a string ``t`` or holds
    NaN/Infinity or a lone surrogate, ``TOO_DEEP``, ``UNKNOWN_TYPE``, ``BAD_ROOM`` or
    ``INVALID`` for fields of the wrong type or range.
    """
    if len(text) > max_size:
        # Not parsed, but the client's encoder puts "ref" second: find it for the answer.
        raise ProtocolError(Code.TOO_LARGE, f"frame larger than {max_size} characters",
                            leading_ref(text))
    try:
        obj = jsonsafe.loads(text, max_depth)
    except JSONRefused as exc:
        raise ProtocolError(_REFUSED[exc.kind], exc.reason, leading_ref(text)) from None
    if not isinstance(obj, dict) or not isinstance(obj.get("t"), str):
        raise ProtocolError(Code.MALFORMED, 'frame is not a JSON object with a string "t"')
    kind = obj["t"]
    if kind == "ping":
        return _PING
    if kind == "pong":
        return _PONG
    if kind == "auth":
        return _auth(obj)
    if kind == "typing":
        return Typing(_room(obj, None))
    parse = _PARSERS.get(kind)
    if parse is None:
        raise ProtocolError(Code.UNKNOWN_TYPE, f"unknown frame type {kind[:40]!r}")
    ref = obj.get("ref")
    if not _is_int(ref):
        raise ProtocolError(Code.INVALID, f'"ref" must be an integer from 0 to {MAX_INT}')
    frame: ClientFrame = parse(obj, ref)
    return frame


def leading_ref(text: str) -> int | None:
    """The ``ref`` of a frame that was not parsed, if it starts as the client writes it."""
    match = _LEADING_REF.match(text)
    ref = int(match.group(1)) if match else None
    return ref if ref is not None and ref <= MAX_INT else None


def _is_int(value: object) -> bool:
    return type(value) is int and 0 <= value <= MAX_INT  # type() excludes bool


def _invalid(reason: str, ref: int | None) -> ProtocolError:
    return ProtocolError(Code.INVALID, reason, ref)


def _room(obj: dict[str, Any], ref: int | None, optional: bool = False) -> Any:
    room = obj.get("room")
    if room is None and optional:
        return None
    why = room_error(room)
    if why is not None:
        raise ProtocolError(Code.BAD_ROOM, why, ref)
    return room


def _object(obj: dict[str, Any], ref: int) -> dict[str, Any]:
    data = obj.get("data")
    if not isinstance(data, dict):
        raise _invalid('"data" must be a JSON object', ref)
    return data


def _message_id(obj: dict[str, Any], ref: int) -> str:
    value = obj.get("id")
    if not isinstance(value, str) or not 0 < len(value) <= 64:
        raise _invalid('"id" must be a message id (a string of 1 to 64 characters)', ref)
    return value


def _since(value: Any, ref: int | None) -> Since | None:
    if value is None:
        return None
    if (not isinstance(value, dict) or not isinstance(value.get("epoch"), str)
            or not 0 < len(value["epoch"]) <= 64 or not _is_int(value.get("seq"))):
        raise _invalid('"since" must be {"epoch": string, "seq": integer}', ref)
    return Since(value["epoch"], value["seq"])


def _auth(obj: dict[str, Any]) -> Auth:
    version = obj.get("v")
    if type(version) is not int:
        raise _invalid('"v" must be an integer', None)
    default = obj.get("default", True)
    if not isinstance(default, bool):
        raise _invalid('"default" must be true or false', None)
    return Auth(version, obj.get("data"), _since(obj.get("since"), None), default)


def _send(obj: dict[str, Any], ref: int) -> Send:
    cid = obj.get("cid")
    if cid is not None and (not isinstance(cid, str) or not _CID.match(cid)):
        raise _invalid('"cid" must be 1 to 64 characters of A-Z a-z 0-9 _ - . :', ref)
    room = _room(obj, ref, optional=True)
    return Send(ref, _object(obj, ref), room, cid)


def _join(obj: dict[str, Any], ref: int) -> Join:
    return Join(ref, _room(obj, ref), obj.get("data"), _since(obj.get("since"), ref))


def _history(obj: dict[str, Any], ref: int) -> History:
    room = _room(obj, ref)
    before, limit = obj.get("before"), obj.get("limit", 50)
    if before is not None and not _is_int(before):
        raise _invalid('"before" must be a seq (an integer)', ref)
    if not _is_int(limit) or not 0 < limit <= LIMITS["HISTORY"]:
        raise _invalid(f'"limit" must be an integer from 1 to {LIMITS["HISTORY"]}', ref)
    return History(ref, room, before, limit)


def _read(obj: dict[str, Any], ref: int) -> Read:
    room, seq = _room(obj, ref), obj.get("seq")
    if not isinstance(seq, int) or not _is_int(seq):
        raise _invalid('"seq" must be an integer', ref)
    return Read(ref, room, seq)


def _react(obj: dict[str, Any], ref: int) -> React:
    room, message_id, emoji = _room(obj, ref), _message_id(obj, ref), obj.get("emoji")
    if (not isinstance(emoji, str) or not 0 < len(emoji) <= LIMITS["EMOJI"]
            or _EMOJI_BAD.search(emoji)):
        raise _invalid(f'"emoji" must be 1 to {LIMITS["EMOJI"]} characters without white '
                       "space or control characters", ref)
    return React(ref, room, message_id, emoji)


_PARSERS: Final[dict[str, Any]] = {
    "send": _send,
    "join": _join,
    "leave": lambda obj, ref: Leave(ref, _room(obj, ref)),
    "history": _history,
    "read": _read,
    "edit": lambda obj, ref: Edit(ref, _room(obj, ref), _message_id(obj, ref), _object(obj, ref)),
    "remove": lambda obj, ref: Remove(ref, _room(obj, ref), _message_id(obj, ref)),
    "react": _react,
}


# -- server frames, encoded -------------------------------------------------------------

PING: Final = '{"t":"ping"}'
PONG: Final = '{"t":"pong"}'


def messages(raws: Iterable[str]) -> str:
    """A ``messages`` frame around already-encoded messages, oldest first."""
    return '{"t":"messages","list":[' + ",".join(raws) + "]}"


def welcome(user: str, meta: Any, heartbeat_ms: int, room: str | None,
            send_limit: tuple[float, int] | None) -> str:
    """``room`` is the default room's info, already encoded (or None)."""
    limits = None if send_limit is None else {"send": list(send_limit)}
    head = dumps({"t": "welcome", "user": user, "meta": meta, "hb": heartbeat_ms,
                  "limits": limits})
    return head[:-1] + ',"room":' + (room or "null") + "}"


def unauthorized(meta: Any) -> str:
    return dumps({"t": "unauthorized", "meta": meta})


def ack(ref: int, fields: Mapping[str, Any] | None = None, **raw: str) -> str:
    """``{"t":"ack","ref":ref, ...fields, ...raw}``: ``raw`` values are JSON texts
    pasted as they are (an encoded message, say)."""
    text = '{"t":"ack","ref":' + str(ref)
    if fields:
        text += "," + dumps(fields)[1:-1]
    for name, value in raw.items():
        text += ',"' + name + '":' + value
    return text + "}"


def nack(ref: int, meta: Any) -> str:
    return dumps({"t": "nack", "ref": ref, "meta": meta})


def frame(kind: str, fields: Mapping[str, Any], **raw: str) -> str:
    """A server frame of type ``kind`` with ``fields`` (encoded here) and ``raw`` fields
    (JSON texts pasted as they are)."""
    text = dumps({"t": kind, **fields})
    for name, value in raw.items():
        text = text[:-1] + ',"' + name + '":' + value + "}"
    return text


def error(code: Code, reason: str, ref: int | None = None, retry: float | None = None) -> str:
    body: dict[str, Any] = {
        "t": "error", "code": int(code), "reason": reason, "fatal": code in FATAL_CODES,
    }
    if ref is not None:
        body["ref"] = ref
    if retry is not None:
        body["retry"] = max(1, round(retry * 1000))
    return dumps(body)
