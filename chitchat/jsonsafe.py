"""JSON that every transport can carry: the one check for what comes in and goes out.

The invariant chitchat keeps: whatever the server accepts (a client's frame, or what a
handler hands to ``good()``) can be encoded as UTF-8 JSON text and delivered on every
transport, now and from history. Python's ``json`` is more lenient than that in three
ways, each of which once let one frame break later deliveries:

- it decodes ``NaN``, ``Infinity``, ``-Infinity`` (not JSON) and turns ``1e999`` into
  an infinite float that cannot be encoded again;
- it decodes ``"\\ud800"`` into a lone surrogate, which is not Unicode: encoding it to
  UTF-8 for a WebSocket frame raises ``UnicodeEncodeError``;
- it recurses once per nesting level, so deep nesting ends in ``RecursionError``.

``loads`` refuses all three with a ``JSONRefused`` that names the problem, and
``dumps`` refuses to produce them; both bound the nesting depth. Both are cheap for
ordinary chat frames: the surrogate and depth walks run only when a fast scan of the
text says they might find something.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, Final

__all__ = ["DEFAULT_MAX_DEPTH", "JSONRefused", "dumps", "loads", "valid_text"]

DEFAULT_MAX_DEPTH: Final = 32

#: A lone surrogate as a character, or a ``\\uD800``-``\\uDFFF`` escape that may decode
#: to one (a valid escaped pair decodes to one astral character and passes the walk).
_SURROGATE_CHAR = re.compile("[\ud800-\udfff]")
_SURROGATE_HINT = re.compile("[\ud800-\udfff]|\\\\u[dD][89abcdefABCDEF]")


_SURROGATE_REASON = "a string holds a lone UTF-16 surrogate (not Unicode)"


class JSONRefused(ValueError):
    """The value or text breaks the invariant; ``kind`` is ``"not_json"``,
    ``"surrogate"`` or ``"too_deep"``, and the message says what was wrong."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


def _constant(name: str) -> Any:
    raise JSONRefused("not_json", f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise JSONRefused("not_json", f"{text[:20]} is too large for a JSON number")
    return value


_decoder = json.JSONDecoder(parse_constant=_constant, parse_float=_finite)
_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def loads(text: str, max_depth: int = DEFAULT_MAX_DEPTH) -> Any:
    """Decode ``text``; raises ``JSONRefused`` for anything ``dumps`` would refuse."""
    try:
        value = _decoder.decode(text)
    except JSONRefused:
        raise
    except RecursionError:
        raise JSONRefused("too_deep", f"nested deeper than {max_depth} levels") from None
    except ValueError:
        raise JSONRefused("not_json", "not valid JSON") from None
    strings = _SURROGATE_HINT.search(text) is not None
    if strings or _brackets(text) > max_depth:
        _walk(value, max_depth, strings)
    return value


def dumps(value: Any, max_depth: int = DEFAULT_MAX_DEPTH) -> str:
    """Encode ``value`` as compact JSON text that every transport can carry.

    Raises ``JSONRefused`` for NaN/infinite floats, lone surrogates and nesting deeper
    than ``max_depth``, and ``TypeError`` for values JSON has no form for.
    """
    try:
        text = _encoder.encode(value)
    except RecursionError:
        raise JSONRefused("too_deep", f"nested deeper than {max_depth} levels") from None
    except ValueError as exc:  # allow_nan=False
        raise JSONRefused("not_json", str(exc)) from None
    if _SURROGATE_CHAR.search(text):
        raise JSONRefused("surrogate", _SURROGATE_REASON)
    if _brackets(text) > max_depth:
        _walk(value, max_depth, strings=False)  # the strings were checked just above
    return text


def valid_text(value: str) -> bool:
    """True when ``value`` is valid Unicode (no lone surrogate): encodable as UTF-8."""
    return _SURROGATE_CHAR.search(value) is None


def _brackets(text: str) -> int:
    """An upper bound of the nesting depth of the JSON ``text`` (brackets inside
    strings count too: pessimistic, never wrong)."""
    return text.count("{") + text.count("[")


def _walk(value: Any, max_depth: int, strings: bool) -> None:
    """Raise for nesting deeper than ``max_depth`` (the outermost container is level 1)
    and, when ``strings``, for lone surrogates in keys and string values."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if strings and _SURROGATE_CHAR.search(item):
                raise JSONRefused("surrogate", _SURROGATE_REASON)
            continue
        if isinstance(item, dict):
            children: Any = item.values()
            if strings:
                stack.extend((key, depth) for key in item)
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > max_depth:
            raise JSONRefused("too_deep", f"nested deeper than {max_depth} levels")
        stack.extend((child, depth + 1) for child in children)
