"""Fuzz: >= 10,000 random frames at a live server; every message gets exactly one reply,
the server survives, and another robot's session is untouched and still gets correct actions."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runtime.artifact import ArtifactKind
from runtime.config import ServeConfig
from runtime.model import LoadedModel
from runtime.protocol import (
    ARTIFACT_KINDS,
    HEADER,
    MAGIC,
    PROTOCOL_VERSION,
    REPLY_BIT,
    ErrorCode,
    MsgType,
    pack_header,
    unpack_header,
)
from tests.runtime.conftest import rand_transition, start_server
from tests.runtime.kinds_fixture import make_kind_artifact
from tests.runtime.onnx_fixture import RandomWeights

FRAMES_WANTED = 10_000

floats = st.floats(allow_nan=True, allow_infinity=True, width=32)
float_frames = st.sampled_from([0, 1, 3, 4, 5, 6, 7, 13, 15, 16, 17, 32, 48, 160]).flatmap(
    lambda n: st.lists(floats, min_size=n, max_size=n).map(lambda v: np.array(v, "<f4").tobytes())
)
byte_frames = st.binary(max_size=300)
msg_types = st.one_of(st.sampled_from([int(t) for t in MsgType]), st.integers(0, 0xFFFF))


@st.composite
def messages(draw: st.DrawFn, sid: int, next_seq: list[int]) -> list[bytes]:
    """A random multipart message: pure noise, or a plausible header with random payloads."""
    kind = draw(st.sampled_from(["noise", "header", "header", "header", "many"]))
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
    version = draw(st.sampled_from([PROTOCOL_VERSION, PROTOCOL_VERSION, 0, 1, 3]))
    flags = draw(st.sampled_from([0, 1, 2**32 - 1]))
    head = HEADER.pack(magic, version, draw(msg_types), session, seq, 0, flags)
    if kind == "many":  # a multipart message with more frames than any request has
        n = draw(st.integers(3, 400))
        return [head, *([draw(st.one_of(float_frames, byte_frames))] * n)]
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
        # A brand-new robot can still connect: one peer holds at most max_sessions_per_peer.
        fresh = running.client()
        fresh.hello()
        assert len(running.server.sessions) <= 2 + running.server.cfg.max_sessions_per_peer
    finally:
        for c in running.clients:
            c.close()
        running.server.stop()


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["recurrent", "conditioned", "weights"])
def test_fuzzed_frames_at_every_kind_get_one_reply_and_spare_other_sessions(
    kind: ArtifactKind, tmp_path: Path
) -> None:
    """The same fuzz at a server of each other kind (their STEP, OBSERVE, RESET_TASK with a
    descriptor frame, GET_STATE): one reply per message, the victim's state untouched."""
    _, w = make_kind_artifact(tmp_path, kind)
    running = start_server(LoadedModel.load(tmp_path, ServeConfig()), w)  # type: ignore[arg-type]
    try:
        victim = running.client()
        victim.hello()
        rng = np.random.default_rng(0)
        obs = rng.normal(size=w.obs_dim).astype(np.float32)
        victim.reset_task(np.ones(w.width, np.float32) if kind == "conditioned" else None)
        victim.step(obs, rng.normal(size=2 * w.obs_dim + w.act_dim + 1).astype(np.float32))
        before = victim.get_state()
        attacker = running.raw()
        attacker.send_multipart([pack_header(MsgType.HELLO, 0, 1), b"{}"])
        sid = unpack_header(attacker.recv_multipart()[0]).session
        next_seq = [1]
        kinds_seen: set[int] = set()

        @settings(
            max_examples=400, deadline=None, database=None, suppress_health_check=list(HealthCheck)
        )
        @given(st.data())
        def one(data: st.DataObject) -> None:
            attacker.send_multipart(data.draw(messages(sid, next_seq)))
            reply = attacker.recv_multipart()
            kinds_seen.add(unpack_header(reply[0]).msg_type)

        one()
        assert MsgType.ERROR in kinds_seen, kinds_seen
        # The attacker's own session still answers (unless the fuzz evicted or ended it).
        attacker.send_multipart([pack_header(MsgType.GET_STATE, sid, next_seq[0] + 1)])
        reply = attacker.recv_multipart()
        if unpack_header(reply[0]).msg_type != MsgType.ERROR:
            assert reply[5] == bytes([ARTIFACT_KINDS.index(kind)])
        attacker.close(linger=0)
        assert running.server._thread is not None and running.server._thread.is_alive()
        after = victim.get_state()
        assert (after.kind, after.count) == (kind, before.count)
        np.testing.assert_array_equal(after.state, before.state)
    finally:
        for c in running.clients:
            c.close()
        running.server.stop()


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="needs Linux /proc")
def test_multipart_floods_are_cut_and_other_sessions_keep_their_answers(
    model: LoadedModel, artifact_dir: tuple[Path, RandomWeights]
) -> None:
    """Many-frame messages: small ones get one BAD_FRAMES reply; one too large for
    max_peer_buffer_bytes loses its connection before libzmq holds it all."""
    w = artifact_dir[1]
    running = start_server(model, w)
    try:
        victim = running.client()
        victim.hello()
        victim.set_mode("exploit")
        rng = np.random.default_rng(1)
        obs = rng.normal(size=6).astype(np.float32)
        expected = victim.step(obs)

        small = running.raw()
        small.send_multipart([pack_header(MsgType.HELLO, 0, 1), b"{}"])
        sid = unpack_header(small.recv_multipart()[0]).session
        small.send_multipart([pack_header(MsgType.STEP, sid, 2)] + [b"x" * 100] * 1000)
        reply = small.recv_multipart()
        assert unpack_header(reply[0]).msg_type == MsgType.ERROR
        assert int.from_bytes(reply[1], "little") == ErrorCode.BAD_FRAMES
        assert b"1000 payload frames" in reply[2]

        frame = zmq.Frame(b"\0" * (1 << 20))  # one buffer, sent 200 times without copies
        base = peak = _rss_mb()
        for _ in range(3):
            flood = running.raw()
            flood.send_multipart([pack_header(MsgType.OBSERVE, sid, 3)] + [frame] * 200, copy=False)
            t0 = time.monotonic()
            while time.monotonic() - t0 < 1.5:
                peak = max(peak, _rss_mb())
                time.sleep(0.01)
            with pytest.raises(zmq.Again):  # no reply: the connection was closed
                flood.recv_multipart(zmq.NOBLOCK)
            flood.close(linger=0)
            assert victim.step(obs).tolist() == expected.tolist()
        guard = running.server._guard
        assert guard is not None and guard.dropped == 3
        assert peak - base < 100, (base, peak)  # 3 x 200 MiB sent; each cut near 8 MiB
        small.send_multipart([pack_header(MsgType.GET_STATE, sid, 4)])  # its session survives
        assert len(small.recv_multipart()) == 7  # header + GET_STATE's 6 frames
        small.close(linger=0)
    finally:
        for c in running.clients:
            c.close()
        running.server.stop()
