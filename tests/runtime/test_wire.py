"""Malformed messages on a bare DEALER socket: each gets an ERROR reply with the right code,
nothing touches another session, and the server keeps serving."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import zmq
from hypothesis import given
from hypothesis import strategies as st

from runtime.model import LoadedModel
from runtime.protocol import (
    HEADER,
    MAGIC,
    PROTOCOL_VERSION,
    REPLY_BIT,
    U32,
    ErrorCode,
    MsgType,
    ProtocolError,
    pack_header,
    unpack_header,
)
from tests.runtime.conftest import Running, start_server
from tests.runtime.onnx_fixture import RandomWeights


def ask(sock: zmq.Socket[bytes], frames: list[bytes]) -> list[bytes]:
    sock.send_multipart(frames)
    return sock.recv_multipart()


def error_code(reply: list[bytes]) -> int:
    head = unpack_header(reply[0])
    assert head.msg_type == MsgType.ERROR, f"expected an error reply, got type {head.msg_type:#x}"
    assert len(reply) == 3 and len(reply[1]) == 4
    assert reply[2].decode()  # a human-readable message
    return int(U32.unpack(reply[1])[0])


@given(
    st.sampled_from(list(MsgType)),
    st.integers(0, 2**64 - 1),
    st.integers(0, 2**64 - 1),
    st.integers(-(2**63), 2**63 - 1),
    st.integers(0, 2**32 - 1),
)
def test_header_round_trips(t: MsgType, session: int, seq: int, ns: int, flags: int) -> None:
    head = unpack_header(pack_header(t, session, seq, flags, send_ns=ns))
    assert (head.msg_type, head.session, head.seq, head.send_ns, head.flags) == (
        t,
        session,
        seq,
        ns,
        flags,
    )
    assert head.version == PROTOCOL_VERSION


def test_header_layout_is_the_documented_one() -> None:
    # docs/PROTOCOL.md: offsets 0 magic, 4 version, 6 type, 8 session, 16 seq, 24 time, 32 flags
    raw = pack_header(MsgType.STEP, 0x0102030405060708, 9, 0xA0B0C0D0, send_ns=-5)
    assert len(raw) == 36 and raw[:4] == b"ZSHT"
    assert struct.unpack_from("<H", raw, 4)[0] == PROTOCOL_VERSION
    assert struct.unpack_from("<H", raw, 6)[0] == 2
    assert struct.unpack_from("<Q", raw, 8)[0] == 0x0102030405060708
    assert struct.unpack_from("<Q", raw, 16)[0] == 9
    assert struct.unpack_from("<q", raw, 24)[0] == -5
    assert struct.unpack_from("<I", raw, 32)[0] == 0xA0B0C0D0


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (b"", ErrorCode.BAD_HEADER),
        (b"x" * 35, ErrorCode.BAD_HEADER),
        (b"ABCD" + pack_header(MsgType.STEP, 1, 1)[4:], ErrorCode.BAD_HEADER),
        (HEADER.pack(MAGIC, 99, MsgType.STEP, 1, 1, 0, 0), ErrorCode.BAD_VERSION),
    ],
)
def test_bad_headers_are_named(frame: bytes, code: ErrorCode) -> None:
    with pytest.raises(ProtocolError) as info:
        unpack_header(frame)
    assert info.value.code == code


@pytest.fixture
def session(running: Running) -> tuple[zmq.Socket[bytes], int, Running]:
    """A raw socket with an open session (via a raw hello)."""
    sock = running.raw()
    reply = ask(sock, [pack_header(MsgType.HELLO, 0, 1), b"{}"])
    head = unpack_header(reply[0])
    assert head.msg_type == MsgType.HELLO | REPLY_BIT
    yield sock, head.session, running
    sock.close(linger=0)


def test_every_malformed_request_gets_a_coded_error(
    session: tuple[zmq.Socket[bytes], int, Running],
) -> None:
    sock, sid, running = session
    obs, tr = np.zeros(6, "<f4").tobytes(), np.zeros(16, "<f4").tobytes()
    seq = iter(range(10, 10_000))

    def h(t: int, s: int = sid) -> bytes:
        return pack_header(t, s, next(seq))

    cases: list[tuple[list[bytes], ErrorCode]] = [
        ([b"garbage"], ErrorCode.BAD_HEADER),
        ([b""], ErrorCode.BAD_HEADER),
        ([h(MsgType.STEP)], ErrorCode.BAD_FRAMES),  # no obs frame
        ([h(MsgType.STEP), obs, tr, tr], ErrorCode.BAD_FRAMES),  # too many frames
        ([h(MsgType.STEP), obs[:-1]], ErrorCode.BAD_PAYLOAD),  # short
        ([h(MsgType.STEP), obs + b"\0"], ErrorCode.BAD_PAYLOAD),  # long
        ([h(MsgType.STEP), obs, tr[:-4]], ErrorCode.BAD_PAYLOAD),  # transition too short
        ([h(MsgType.STEP), np.full(6, np.nan, "<f4").tobytes()], ErrorCode.NON_FINITE),
        ([h(MsgType.OBSERVE), tr[:10]], ErrorCode.BAD_PAYLOAD),
        ([h(MsgType.OBSERVE)], ErrorCode.BAD_FRAMES),
        ([h(MsgType.SET_MODE), b"\x01"], ErrorCode.BAD_PAYLOAD),
        ([h(MsgType.SET_MODE), b"\x02\x00"], ErrorCode.BAD_PAYLOAD),
        ([h(MsgType.RESET_TASK), b"x"], ErrorCode.BAD_FRAMES),
        ([h(MsgType.GET_STATE), b""], ErrorCode.BAD_FRAMES),
        ([h(MsgType.RELOAD)], ErrorCode.BAD_PAYLOAD),
        ([h(MsgType.RELOAD), b"\xff\xfe"], ErrorCode.BAD_PAYLOAD),
        ([h(0x7777)], ErrorCode.UNKNOWN_TYPE),
        ([h(MsgType.ERROR)], ErrorCode.UNKNOWN_TYPE),
        ([h(MsgType.STEP | REPLY_BIT), obs], ErrorCode.UNKNOWN_TYPE),
        ([h(MsgType.STEP, s=sid ^ 2), obs], ErrorCode.UNKNOWN_SESSION),
        ([h(MsgType.STEP, s=0), obs], ErrorCode.UNKNOWN_SESSION),
        ([pack_header(MsgType.STEP, sid, 1), obs], ErrorCode.STALE_SEQUENCE),  # hello used 1
        ([h(MsgType.HELLO), b"not json"], ErrorCode.BAD_PAYLOAD),
        ([h(MsgType.HELLO), b'{"obs_dim": -3}'], ErrorCode.BAD_PAYLOAD),
        ([h(MsgType.HELLO), b'{"surprise": 1}'], ErrorCode.BAD_PAYLOAD),
        ([h(MsgType.HELLO), b'{"protocol_version": 1}'], ErrorCode.BAD_VERSION),
        ([h(MsgType.HELLO)], ErrorCode.BAD_FRAMES),
        ([h(MsgType.HELLO), b"{" * 70000], ErrorCode.TOO_LARGE),
    ]
    for frames, code in cases:
        assert error_code(ask(sock, frames)) == code, frames[:2]
    # The same seq twice: the second is stale even though the first was an error.
    dup = pack_header(MsgType.STEP, sid, 50_000)
    assert error_code(ask(sock, [dup, obs[:3]])) == ErrorCode.BAD_PAYLOAD
    assert error_code(ask(sock, [dup, obs])) == ErrorCode.STALE_SEQUENCE
    # And the session still works.
    reply = ask(sock, [pack_header(MsgType.STEP, sid, 50_001), obs])
    assert unpack_header(reply[0]).msg_type == MsgType.STEP | REPLY_BIT
    assert len(reply[1]) == 12
    assert running.server.sessions[sid].posterior.count == 0


def test_reply_echoes_session_and_seq(session: tuple[zmq.Socket[bytes], int, Running]) -> None:
    sock, sid, _ = session
    reply = ask(
        sock,
        [
            pack_header(MsgType.GET_STATE, sid, 777),
        ],
    )
    head = unpack_header(reply[0])
    assert (head.session, head.seq, head.msg_type) == (sid, 777, MsgType.GET_STATE | REPLY_BIT)
    assert [len(f) for f in reply[1:]] == [16, 16, 16, 8, 1, 0]
    assert reply[5] == b"\x00"  # kind posterior


def test_oversized_message_is_dropped_and_the_server_lives(
    model: LoadedModel, artifact_dir: tuple[Path, RandomWeights]
) -> None:
    running = start_server(model, artifact_dir[1], max_message_bytes=4096)
    big = running.raw()
    big.setsockopt(zmq.RCVTIMEO, 300)
    big.send_multipart([pack_header(MsgType.OBSERVE, 1, 1), b"\0" * 100_000])
    with pytest.raises(zmq.Again):
        big.recv_multipart()  # libzmq dropped it (and the peer) before Python saw it
    big.close(linger=0)
    c = running.client()
    try:
        c.hello()
        assert c.step(np.zeros(6)).shape == (3,)
        assert c.observe(np.zeros((10, 16))) == 10  # 640 bytes: under the limit
    finally:
        c.close()
        running.server.stop()


def test_protocol_doc_lists_every_message_type_and_error_code() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "PROTOCOL.md").read_text()
    for t in MsgType:
        assert f"| {t.name} " in doc or f"| {t.name} (" in doc, t.name
    for code in ErrorCode:
        assert f"| {int(code)} " in doc and f"| {code.name} |" in doc, code.name
    assert "<4sHHQQqI" in doc and HEADER.format == "<4sHHQQqI"
    # The version the page specifies is the one spoken, and its wire changes are listed.
    assert doc.startswith(f"# zshot runtime protocol, version {PROTOCOL_VERSION}\n")
    assert f"- **Version {PROTOCOL_VERSION}**" in doc.split("## Changes of the wire")[1]
    assert f"| version    | protocol version, `{PROTOCOL_VERSION}` |" in doc


@given(st.text(max_size=40))
def test_endpoint_problem_never_raises_and_accepts_only_endpoints(text: str) -> None:
    from runtime.protocol import endpoint_problem

    problem = endpoint_problem(text, bind=True)
    assert problem is None or isinstance(problem, str)
    if problem is None:
        assert text.split("://")[0] in ("tcp", "ipc", "inproc")


@pytest.mark.parametrize(
    ("endpoint", "bind", "ok"),
    [
        ("tcp://127.0.0.1:5555", False, True),
        ("tcp://127.0.0.1:*", True, True),
        ("tcp://127.0.0.1:*", False, False),
        ("tcp://127.0.0.1:0", True, True),
        ("tcp://127.0.0.1:0", False, False),
        ("tcp://[::1]:5555", False, True),
        ("tcp://127.0.0.1:65536", True, False),
        ("ipc:///tmp/x", False, True),
        ("garbage", True, False),
        ("tcp://:5555", True, False),
    ],
)
def test_endpoint_problem_cases(endpoint: str, bind: bool, ok: bool) -> None:
    from runtime.protocol import endpoint_problem

    assert (endpoint_problem(endpoint, bind=bind) is None) is ok
