"""What travels between nodes: channel names, and the envelope around each payload.

Every payload a broker carries is one string, ``<kind><seq>|<text>``:

- ``m42|{...}``: entry 42 of a room's log, a message (``text`` is its JSON);
- ``e43|{...}``: entry 43, an ``edit``/``remove``/``reactions`` frame;
- ``p|{...}``: a push to a user (a Message's JSON, not kept);
- ``c|{...}``: a control message for the nodes themselves (presence and typing
  changes, read positions, ``chat.add``/``chat.remove``), never sent to clients as is.

Room entries travel on the room's channel ``r:<room>``; pushes and a user's control
messages on ``u:<user id>``. The seq sits in front so that a node can order entries and
find gaps without parsing any JSON.
"""

from __future__ import annotations

import json
from typing import Any, Final

__all__ = [
    "CONTROL",
    "ENTRY",
    "MESSAGE",
    "PUSH",
    "control",
    "entry",
    "parse",
    "push",
    "room_channel",
    "user_channel",
]

MESSAGE: Final = "m"
ENTRY: Final = "e"
PUSH: Final = "p"
CONTROL: Final = "c"

_dump = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def room_channel(room: str) -> str:
    return "r:" + room


def user_channel(user_id: str) -> str:
    return "u:" + user_id


def entry(seq: int, text: str, message: bool) -> str:
    return (MESSAGE if message else ENTRY) + str(seq) + "|" + text


def push(text: str) -> str:
    return PUSH + "|" + text


def control(op: str, **fields: Any) -> str:
    return CONTROL + "|" + _dump({"op": op, **fields})


def parse(payload: str) -> tuple[str, int | None, str]:
    """``(kind, seq or None, text)``; raises ``ValueError`` for a malformed payload."""
    bar = payload.index("|")
    kind = payload[0]
    return kind, int(payload[1:bar]) if bar > 1 else None, payload[bar + 1:]
