"""Fuzzing: random, truncated, nested, huge, wrong-typed and mis-ordered frames thrown at
the decoder and at live connections. No unhandled exception, every bad frame exactly one
coded error, the connection stays usable, and afterwards a healthy pair still chats.

The test run uses a bounded number of examples (the ``ci`` profile). A long campaign:
``HYPOTHESIS_PROFILE=campaign .venv/bin/python -m pytest tests/test_fuzz.py`` (see
docs/SECURITY.md).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from typing import Any

import pytest
from clients import TRANSPORTS
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from chitchat import jsonsafe, protocol
from chitchat.errors import ProtocolError

settings.register_profile("ci", max_examples=150, deadline=None, derandomize=False,
                          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                 HealthCheck.too_slow])
settings.register_profile("campaign", max_examples=20_000, deadline=None,
                          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                 HealthCheck.too_slow])
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
settings.load_profile(PROFILE)
#: Live examples open real connections: fewer of them in the test run.
LIVE_EXAMPLES = 50 if PROFILE == "ci" else settings().max_examples // 4

LIMIT = 64 * 1024

# -- what frames are made of ------------------------------------------------------------

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**64), 2**64),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20),
    st.sampled_from(["\ud800", "\udfff", "x\ud83d", "😀", "\x00", "main", "dev"]),
)
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=25)
rooms = st.one_of(st.sampled_from(["main", "dev", "", "x" * 201, "a\tb"]), values)
refs = st.one_of(st.integers(-5, 2**60), st.sampled_from([2**53 - 1, 2**53]), values)


@st.composite
def frame_objects(draw: Any) -> dict[str, Any]:
    """A frame object: a known or unknown type with right, wrong or missing fields."""
    kind = draw(st.one_of(st.sampled_from(protocol.CLIENT_FRAMES), st.text(max_size=10)))
    frame: dict[str, Any] = {"t": kind}
    for field, strategy in [("ref", refs), ("room", rooms), ("data", values),
                            ("id", values), ("emoji", values), ("seq", refs),
                            ("cid", values), ("since", values), ("limit", refs),
                            ("before", refs), ("v", st.sampled_from([1, 2, "1"]))]:
        if draw(st.booleans()):
            frame[field] = draw(strategy)
    return frame


def encode(frame: Any) -> str:
    return json.dumps(frame, allow_nan=True)  # NaN and Infinity on purpose


@st.composite
def frame_texts(draw: Any) -> str:
    """Frame text as an attacker sends it: well-formed, truncated, deeply nested, huge,
    not JSON at all, or a JSON value that is not an object."""
    text = encode(draw(frame_objects()))
    mutation = draw(st.sampled_from(["as is", "as is", "truncated", "nested", "huge",
                                     "garbage", "not an object"]))
    if mutation == "truncated":
        return text[: draw(st.integers(0, max(0, len(text) - 1)))]
    if mutation == "nested":
        depth = draw(st.sampled_from([31, 32, 33, 100, 5000]))
        return '{"t":"send","ref":1,"data":{"a":' + "[" * depth + "]" * depth + "}}"
    if mutation == "huge":
        return '{"t":"send","ref":2,"data":{"text":"' + "x" * (LIMIT + 10) + '"}}'
    if mutation == "garbage":
        return draw(st.text(max_size=60))
    if mutation == "not an object":
        return encode(draw(values))
    return text


# -- the decoder alone ------------------------------------------------------------------


@given(frame_texts())
def test_the_decoder_refuses_with_a_code_or_yields_what_can_be_delivered(text: str) -> None:
    try:
        frame = protocol.decode(text, LIMIT)
    except ProtocolError as exc:
        assert exc.code in protocol.Code
        assert exc.ref is None or 0 <= exc.ref <= protocol.MAX_INT
        return
    # Whatever was accepted can be encoded again for every transport.
    for field in ("data", "room", "id", "emoji", "cid"):
        if hasattr(frame, field):
            jsonsafe.dumps(getattr(frame, field))
    if hasattr(frame, "ref"):
        assert 0 <= frame.ref <= protocol.MAX_INT  # type: ignore[attr-defined]


@given(st.text(max_size=200))
def test_any_text_at_all_decodes_or_is_refused_with_a_code(text: str) -> None:
    with contextlib.suppress(ProtocolError):  # a refusal with a code is fine; nothing else
        protocol.decode(text, LIMIT)


# -- live connections -------------------------------------------------------------------


def expected_code(text: str) -> int | None:
    """The code of the error the server must answer ``text`` with at intake, or None
    when the frame decodes (its answer then depends on the session)."""
    try:
        protocol.decode(text, LIMIT)
    except ProtocolError as exc:
        return int(exc.code)
    return None


def answered(texts: list[str], authorized: bool) -> list[str]:
    """The frames the test can expect answers to: before authorization, a frame that
    decodes as ``auth`` ends the exchange the test reads (``welcome``, or
    ``unauthorized`` and the close), so the frames after it may get none."""
    if authorized:
        return texts
    for n, text in enumerate(texts):
        with contextlib.suppress(ProtocolError):
            if isinstance(protocol.decode(text, LIMIT), protocol.Auth):
                return texts[:n + 1]
    return texts


@pytest.mark.chat(send_rate=None, frame_rate=None, max_user_connections=None)
@settings(max_examples=LIVE_EXAMPLES)
@given(texts=st.lists(frame_texts(), min_size=1, max_size=12), authorize=st.booleans(),
       kind=st.sampled_from(sorted(TRANSPORTS)))
# Found by this test: an auth frame without data ends the session (unauthorized) before
# the malformed frame after it is read.
@example(texts=['{"t": "auth", "v": 1}', '{"t": "auth"}'], authorize=False,
         kind="native-websocket")
def test_live_connections_answer_each_bad_frame_once_and_stay_usable(
    http_server: Any, io_loop: Any, base_url: str, caplog: pytest.LogCaptureFixture,
    texts: list[str], authorize: bool, kind: str,
) -> None:
    caplog.set_level(logging.INFO)

    async def scenario() -> None:
        client = TRANSPORTS[kind](base_url)
        await client.connect()
        try:
            if authorize:
                welcome = await client.auth({"name": "fuzz", "token": "secret-fuzz"})
                assert welcome["t"] == "welcome"
            for text in texts:
                client.send(text)
            # A sentinel: frames are handled in order, so once it is answered every
            # frame before it has had its answer.
            client.send({"t": "history", "ref": SENTINEL, "room": "main"} if authorize else
                        {"t": "auth", "v": 1, "data": {"name": "fuzz", "token": "secret-fuzz"}})
            got = []
            while True:
                frame = await client.recv(timeout=10)
                got.append(frame)
                if (frame.get("ref") == SENTINEL or frame.get("fatal")
                        or frame["t"] in ("welcome", "unauthorized")):
                    break
            errors = [f["code"] for f in got if f["t"] == "error"]
            # Each frame the decoder refuses gets exactly one error, in order (frames that
            # decode may add errors of their own: 4003 before auth, 4016, ...).
            remaining = iter(errors)
            bad = [code for code in map(expected_code, answered(texts, authorize))
                   if code is not None]
            assert all(any(code == e for e in remaining) for code in bad), (texts, got)
            ends = [f for f in got if f.get("fatal") or f["t"] == "unauthorized"]
            if ends:  # only a fuzzed auth frame (bad version or credentials) may end it
                assert not authorize and any(t.lstrip().startswith('{"t": "auth"')
                                             for t in texts), (texts, got)
        finally:
            await client.aclose()
        await a_healthy_pair_chats(base_url)

    io_loop.run_sync(scenario, timeout=30)
    tracebacks = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert not tracebacks, [r.getMessage() for r in tracebacks]
    caplog.clear()


SENTINEL = 2**53 - 7


async def a_healthy_pair_chats(base_url: str) -> None:
    ann, bob = (TRANSPORTS["native-websocket"](base_url),
                TRANSPORTS["sockjs-websocket"](base_url))
    for client, name in ((ann, "ann"), (bob, "bob")):
        await client.connect()
        assert (await client.auth({"name": name, "token": "secret-" + name}))["t"] == "welcome"
    ack = await ann.request({"t": "send", "ref": 1, "data": {"text": "still fine"}})
    assert ack["t"] == "ack"
    assert (await bob.recv_where(lambda f: f["t"] == "messages" and f["list"][-1] == ack["msg"]))
    for client in (ann, bob):
        await client.aclose()
