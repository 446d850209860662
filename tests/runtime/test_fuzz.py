"""Fuzz: >= 10,000 random frames at a live server; every message gets exactly one reply,
the server survives, and another robot's session is untouched and still gets correct actions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runtime.model import LoadedModel
from runtime.protocol import (
    HEADER,
    MAGIC,
    PROTOCOL_VERSION,
    REPLY_BIT,
    MsgType,
    pack_header,
    unpack_header,
)
from tests.runtime.conftest import rand_transition, start_server
from tests.runtime.onnx_fixture import RandomWeights

FRAMES_WANTED = 10_000

floats = st.floats(allow_nan=True, allow_infinity=True, width=32)
float_frames = st.sampled_from([0, 1, 4, 5, 6, 7, 15, 16, 17, 32, 48, 160]).flatmap(
    lambda n: st.lists(floats, min_size=n, max_size=n).map(lambda v: np.array(v, "<f4").tobytes())
)
byte_frames = st.binary(max_size=300)
msg_types = st.one_of(st.sampled_from([int(t) for t in MsgType]), st.integers(0, 0xFFFF))


@st.composite
def messages(draw: st.DrawFn, sid: int, next_seq: list[int]) -> list[bytes]:
    """A random multipart message: pure noise, or a plausible header with random payloads."""
    kind = draw(st.sampled_from(["noise", "header", "header", "header"]))
    if kind == "noise":
        return draw(st.lists(byte_frames, min_size=1, max_size=6))
    session = draw(st.one_of(st.just(sid), st.just(sid), st.just(0), st.integers(0, 2**64 - 1)))
    if draw(st.booleans()):
        next_seq[0] += 1
        seq = next_seq[0]
    else:
        seq = draw(st.integers(0, 2**40))
        next_seq[0] = max(next_seq[0], seq)
    magic = draw(st.sampled_from([MAGIC, MAGIC, MAGIC, b"ZSHX"]))
    version = draw(st.sampled_from([PROTOCOL_VERSION, PROTOCOL_VERSION, 0, 2]))
    flags = draw(st.sampled_from([0, 1, 2**32 - 1]))
    head = HEADER.pack(magic, version, draw(msg_types), session, seq, 0, flags)
    payload = draw(st.lists(st.one_of(float_frames, byte_frames), max_size=5))
    return [head, *payload]


@pytest.mark.slow
def test_fuzzed_frames_never_hurt_the_server_or_other_sessions(
    model: LoadedModel, artifact_dir: tuple[Path, RandomWeights], tmp_path: Path
) -> None:
    w = artifact_dir[1]
    running = start_server(model, w, max_message_bytes=1 << 16)
    try:
        # The robot that must not be disturbed: exploit, posterior updated per step.
        victim = running.client()
        victim.hello()
        victim.set_mode("exploit", "step")
        rng = np.random.default_rng(0)
        victim.observe(rand_transition(rng, w, 25))
        before = victim.get_state()

        attacker = running.raw()
        attacker.setsockopt(zmq.RCVTIMEO, 5000)
        attacker.send_multipart([pack_header(MsgType.HELLO, 0, 1), b"{}"])
        sid = unpack_header(attacker.recv_multipart()[0]).session
        sent = [0]
        replies = {"error": 0, "ok": 0}
        next_seq = [1]

        @settings(
            max_examples=3300,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(st.data())
        def one(data: st.DataObject) -> None:
            frames = data.draw(messages(sid, next_seq))
            attacker.send_multipart(frames)
            sent[0] += len(frames)
            reply = attacker.recv_multipart()  # exactly one reply per message, or Again
            head = unpack_header(reply[0])
            if head.msg_type == MsgType.ERROR:
                replies["error"] += 1
            else:
                assert head.msg_type & REPLY_BIT
                replies["ok"] += 1

        one()
        # Reloads answered late may still be in flight: drain them.
        attacker.setsockopt(zmq.RCVTIMEO, 300)
        try:
            while True:
                attacker.recv_multipart()
        except zmq.Again:
            pass
        attacker.close(linger=0)

        assert sent[0] >= FRAMES_WANTED, sent
        assert replies["error"] > 1000 and replies["ok"] > 0, replies
        assert running.server._thread is not None and running.server._thread.is_alive()
        after = victim.get_state()
        assert after.count == before.count
        np.testing.assert_array_equal(after.mean, before.mean)
        np.testing.assert_array_equal(after.z, before.z)
        obs = rng.normal(size=6).astype(np.float32)
        tr = rand_transition(rng, w)
        action = victim.step(obs, tr)
        mu, var = w.encode(np.vstack([rand_transition(np.random.default_rng(0), w, 25), tr[None]]))
        mean = (mu / var).sum(0) / (1.0 + (1.0 / var).sum(0))
        np.testing.assert_allclose(action, w.act(obs, mean)[0], atol=2e-5)
        # A brand-new robot can still connect (unless the fuzzer filled every session slot).
        fresh = running.client()
        try:
            fresh.hello()
        except Exception as exc:  # only the session limit may refuse it
            assert "TOO_MANY_SESSIONS" in str(exc)
    finally:
        for c in running.clients:
            c.close()
        running.server.stop()
